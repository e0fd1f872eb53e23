"""The public page of a school (P4.2 公示): service times, groups and content, safety measures, fee, how to apply.

Built from what the school has set up (groups, dismissal times, sessions) and its public profile
(fee, contact, a note on applying). It never shows a child, a guardian or a member of staff by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, col, select

from central import accounts, audit
from central.accounts import Principal
from central.core.config import Settings
from central.errors import Invalid
from central.i18n import CATALOGUE, t
from central.models import CareSession, DismissalTime, InterestGroup

CATALOGUE.update(
    {
        "pub.title": {"zh_CN": "{school} 课后服务公示", "en": "{school}: after-school service"},
        "pub.lang_other": {"zh_CN": "English", "en": "中文"},
        "pub.times": {"zh_CN": "服务时间", "en": "Service times"},
        "pub.times_rule": {
            "zh_CN": "仅在上学日、正常放学之后开展，不提前放学。每课时 {minutes} 分钟，每次最多 {periods} 课时。",
            "en": "Only on school days, after regular dismissal; classes never end early for it. "
            "A period is {minutes} minutes; a session lasts at most {periods} periods.",
        },
        "pub.dismissal": {"zh_CN": "各年级放学时间", "en": "Regular dismissal by grade"},
        "pub.season.summer": {"zh_CN": "夏季作息", "en": "summer timetable"},
        "pub.season.winter": {"zh_CN": "冬季作息", "en": "winter timetable"},
        "pub.upcoming": {"zh_CN": "近期服务安排", "en": "Coming sessions"},
        "pub.none_yet": {"zh_CN": "学校尚未公布。", "en": "Not yet published by the school."},
        "pub.groups": {"zh_CN": "服务内容与兴趣小组", "en": "Groups and content"},
        "pub.group_line": {
            "zh_CN": "{category} · {grades} · 每周{weekdays} · {start} 起 {periods} 课时 · 地点：{place} · 限 {capacity} 人",
            "en": "{category} · {grades} · {weekdays} · from {start}, {periods} period(s) · at {place} · up to {capacity}",
        },
        "pub.after_dismissal": {"zh_CN": "放学后", "en": "dismissal"},
        "pub.off_site": {"zh_CN": "（校外场馆）", "en": " (off-site venue)"},
        "pub.weekday_sep": {"zh_CN": "、", "en": ", "},
        "pub.safety": {"zh_CN": "安全措施", "en": "Safety measures"},
        "pub.safety.principal": {
            "zh_CN": "校长为课后服务安全第一责任人，开展前进行安全风险评估。",
            "en": "The principal is first responsible for safety and assesses the risks before the service starts.",
        },
        "pub.safety.ratio": {
            "zh_CN": "每名在岗教职工看护的学生不超过 {ratio} 人。",
            "en": "No more than {ratio} students per member of staff on duty.",
        },
        "pub.safety.checkin": {
            "zh_CN": "学生刷卡签到；开始后 {minutes} 分钟未签到即记为缺勤并提醒。",
            "en": "Students check in with a card; one not checked in {minutes} minutes after the start is marked absent and flagged.",
        },
        "pub.safety.pickup": {
            "zh_CN": "每名学生由经授权的监护人接走，或凭监护人书面同意自行离校；每次离校均记录由谁、何时接走。",
            "en": "Every child leaves with an authorised guardian, or alone only with the guardian's written permission; "
            "each departure records who took the child and when.",
        },
        "pub.safety.code": {
            "zh_CN": "临时委托他人接送时，由监护人签发一次性接送码，限指定人员、指定日期使用一次。",
            "en": "When someone else collects a child, the guardian issues a one-time code for that named person and date.",
        },
        "pub.safety.late": {
            "zh_CN": "结束后 {minutes} 分钟仍未离校的学生，门卫和老师会收到提醒。",
            "en": "A child still at school {minutes} minutes after the end raises an alert for the guard and the teacher.",
        },
        "pub.safety.gate": {"zh_CN": "门卫对来访人员进出登记。", "en": "The gate registers every visitor in and out."},
        "pub.fee": {"zh_CN": "收费", "en": "Fee"},
        "pub.fee_amount": {
            "zh_CN": "每生每月 {amount} 元，按成本收取、不营利。",
            "en": "{amount} CNY per student per month, at cost, not for profit.",
        },
        "pub.fee_none": {"zh_CN": "学校尚未公布收费标准。", "en": "The school has not yet published its fee."},
        "pub.fee_free": {
            "zh_CN": "建档立卡贫困家庭学生免费；中途退出可申请退还剩余费用。",
            "en": "Students of registered poor families pay nothing; a student who stops midway gets the remaining fee back.",
        },
        "pub.apply": {"zh_CN": "如何报名", "en": "How to apply"},
        "pub.apply.steps": {
            "zh_CN": "自愿参加。家长书面申请 → 班主任审核 → 学校批准；学校、家长和学生三方签署告知书后开始服务。",
            "en": "Taking part is voluntary. The guardian applies in writing → the class teacher reviews → the school approves; "
            "the service starts once school, guardian and student have signed the notice.",
        },
        "pub.contact": {"zh_CN": "联系方式：{contact}", "en": "Contact: {contact}"},
        "profile_fee_cap": {
            "zh_CN": "收费每生每月不得超过 {cap} 元（P7.2）",
            "en": "The fee may not exceed {cap} CNY per student per month (P7.2)",
        },
    }
)

WEEKDAYS = {
    "zh_CN": ("一", "二", "三", "四", "五", "六", "日"),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}
UPCOMING_DAYS = 14


class PublicProfileBase(SQLModel):
    fee_fen: int | None = Field(default=None, ge=0)  # per student per month, integer fen; None: not published
    contact: str = Field(default="", max_length=200)
    apply_note: str = Field(default="", max_length=2000)  # where to get the form, deadlines (shown as written)


class PublicProfile(PublicProfileBase, table=True):
    __tablename__ = "public_profile"

    school_id: int = Field(foreign_key="school.id", primary_key=True)
    updated_by: str = Field(max_length=100)
    updated_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def get_profile(session: Session, *, school: str) -> PublicProfileBase:
    found = accounts.school_by_code(session, school)
    row = session.get(PublicProfile, found.id)
    return PublicProfileBase.model_validate(row) if row else PublicProfileBase()


def set_profile(session: Session, *, principal: Principal, school: str, data: PublicProfileBase, fee_cap_fen: int) -> PublicProfileBase:
    found = accounts.school_by_code(session, school)
    if data.fee_fen is not None and data.fee_fen > fee_cap_fen:
        raise Invalid("profile_fee_cap", cap=yuan(fee_cap_fen))  # P7.2
    row = session.get(PublicProfile, found.id)
    before = audit.snapshot(row)
    if row is None:
        row = PublicProfile(school_id=found.id, updated_by="", updated_at=datetime.now(UTC))
    row.sqlmodel_update(data.model_dump())
    row.updated_by, row.updated_at = principal.label, datetime.now(UTC)
    session.add(row)
    session.flush()
    audit.record(session, actor=principal, action="public_profile.set", entity=f"public_profile:{found.id}", before=before, after=audit.snapshot(row), school_id=found.id)
    session.commit()
    return PublicProfileBase.model_validate(row)


@dataclass
class Section:
    title: str
    lines: list[str]
    rows: list[tuple[str, ...]] = field(default_factory=list)  # a table: day, time, group, place


@dataclass
class PublicPage:
    locale: str
    title: str
    other_locale: str
    other_label: str
    sections: list[Section] = field(default_factory=list)


def _category_label(category: str, locale: str) -> str:
    from central.groups import ALLOWED

    zh, en = ALLOWED.get(category, (category, category))
    return zh if locale == "zh_CN" else en


def _season(season: str, locale: str) -> str:
    key = f"pub.season.{season}"
    return t(key, locale) if key in CATALOGUE else season


def _hm(value: time) -> str:
    return value.strftime("%H:%M")


def build_page(session: Session, *, school: str, locale: str, settings: Settings, today: date | None = None) -> PublicPage:
    found = accounts.school_by_code(session, school)
    tz = ZoneInfo(found.timezone)
    today = today or datetime.now(tz).date()
    other = "en" if locale == "zh_CN" else "zh_CN"
    page = PublicPage(locale, t("pub.title", locale, school=found.name), other, t("pub.lang_other", locale))

    times = [t("pub.times_rule", locale, minutes=settings.period_minutes, periods=settings.max_periods)]
    dismissals = session.exec(
        select(DismissalTime).where(DismissalTime.school_id == found.id).order_by(DismissalTime.season, DismissalTime.grade)
    ).all()
    page.sections.append(Section(t("pub.times", locale), times))
    if dismissals:
        page.sections.append(
            Section(
                t("pub.dismissal", locale),
                [f"{d.grade} · {_season(d.season, locale)} · {_hm(d.dismissal)}" for d in dismissals],
            )
        )

    groups = session.exec(select(InterestGroup).where(InterestGroup.school_id == found.id).order_by(col(InterestGroup.id))).all()
    names = {g.id: g.name for g in groups}
    sep = t("pub.weekday_sep", locale)
    sessions = session.exec(
        select(CareSession)
        .where(CareSession.school_id == found.id, CareSession.day >= today, CareSession.day <= today + timedelta(days=UPCOMING_DAYS))
        .order_by(CareSession.day, CareSession.starts_at)
    ).all()
    rows = [
        (
            s.day.isoformat() + " " + WEEKDAYS[locale][s.day.weekday()],
            # Stored in UTC, shown on the school's clock.
            f"{_hm(accounts.as_utc(s.starts_at).astimezone(tz).time())}–{_hm(accounts.as_utc(s.ends_at).astimezone(tz).time())}",
            names.get(s.group_id, ""),
            s.place,
        )
        for s in sessions
    ]
    page.sections.append(Section(t("pub.upcoming", locale), [] if rows else [t("pub.none_yet", locale)], rows))
    page.sections.append(
        Section(
            t("pub.groups", locale),
            [
                f"{g.name}: "
                + t(
                    "pub.group_line",
                    locale,
                    category=_category_label(g.category, locale),
                    grades=sep.join(g.grades),
                    weekdays=sep.join(WEEKDAYS[locale][d - 1] for d in g.weekdays),
                    start=_hm(g.start_time) if g.start_time else t("pub.after_dismissal", locale),
                    periods=g.periods,
                    place=g.place + (t("pub.off_site", locale) if g.off_site else ""),
                    capacity=g.capacity,
                )
                + (f" — {g.description}" if g.description else "")
                for g in groups
            ]
            or [t("pub.none_yet", locale)],
        )
    )
    page.sections.append(
        Section(
            t("pub.safety", locale),
            [
                t("pub.safety.principal", locale),
                t("pub.safety.ratio", locale, ratio=settings.ratio_max),
                t("pub.safety.checkin", locale, minutes=settings.checkin_grace_minutes),
                t("pub.safety.pickup", locale),
                t("pub.safety.code", locale),
                t("pub.safety.late", locale, minutes=settings.pickup_grace_minutes),
                t("pub.safety.gate", locale),
            ],
        )
    )
    profile = get_profile(session, school=school)
    fee = t("pub.fee_amount", locale, amount=yuan(profile.fee_fen)) if profile.fee_fen is not None else t("pub.fee_none", locale)
    page.sections.append(Section(t("pub.fee", locale), [fee, t("pub.fee_free", locale)]))
    apply = [t("pub.apply.steps", locale)]
    if profile.apply_note:
        apply.append(profile.apply_note)
    if profile.contact:
        apply.append(t("pub.contact", locale, contact=profile.contact))
    page.sections.append(Section(t("pub.apply", locale), apply))
    return page
