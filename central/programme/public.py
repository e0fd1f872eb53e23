"""The public page of a school (P4.2 公示): service times, groups and content, safety measures, fee, how to apply.

Built from what the school has set up (groups, dismissal times, sessions) and its public profile
(fee, contact, a note on applying). It never shows a child, a guardian or a member of staff by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time, timedelta

from sqlmodel import Session, col, select

from central.core import audit, clock
from central.core.config import Settings
from central.core.errors import Invalid
from central.core.i18n import has, t
from central.programme.models import CareSession, DismissalTime, InterestGroup, PublicProfile, PublicProfileBase
from central.schools.models import School

UPCOMING_DAYS = 14


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def get_profile(session: Session, *, school: School) -> PublicProfileBase:
    row = session.get(PublicProfile, school.id)
    return PublicProfileBase.model_validate(row) if row else PublicProfileBase()


def set_profile(session: Session, *, actor: audit.Actor, school: School, data: PublicProfileBase, fee_cap_fen: int) -> PublicProfileBase:
    if data.fee_fen is not None and data.fee_fen > fee_cap_fen:
        raise Invalid("profile_fee_cap", cap=yuan(fee_cap_fen))  # P7.2
    row = session.get(PublicProfile, school.id)
    before = audit.snapshot(row)
    if row is None:
        row = PublicProfile(school_id=school.id, updated_by="", updated_at=clock.utcnow())
    row.sqlmodel_update(data.model_dump())
    row.updated_by, row.updated_at = actor.label, clock.utcnow()
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="public_profile.set", entity=f"public_profile:{school.id}", before=before, after=audit.snapshot(row), school_id=school.id)
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
    key = f"group.kind.{category}"
    return t(key, locale) if has(key) else category


def _weekday(iso_weekday: int, locale: str) -> str:
    return t(f"pub.weekday.{iso_weekday}", locale)


def _season(season: str, locale: str) -> str:
    key = f"pub.season.{season}"
    return t(key, locale) if has(key) else season


def _hm(value: time) -> str:
    return value.strftime("%H:%M")


def build_page(session: Session, *, school: School, locale: str, settings: Settings, today: date | None = None) -> PublicPage:
    today = today or clock.local_today(school)
    other = "en" if locale == "zh_CN" else "zh_CN"
    page = PublicPage(locale, t("pub.title", locale, school=school.name), other, t("pub.lang_other", locale))

    times = [t("pub.times_rule", locale, minutes=settings.period_minutes, periods=settings.max_periods)]
    dismissals = session.exec(
        select(DismissalTime).where(DismissalTime.school_id == school.id).order_by(DismissalTime.season, DismissalTime.grade)
    ).all()
    page.sections.append(Section(t("pub.times", locale), times))
    if dismissals:
        page.sections.append(
            Section(
                t("pub.dismissal", locale),
                [f"{d.grade} · {_season(d.season, locale)} · {_hm(d.dismissal)}" for d in dismissals],
            )
        )

    groups = session.exec(select(InterestGroup).where(InterestGroup.school_id == school.id).order_by(col(InterestGroup.id))).all()
    names = {g.id: g.name for g in groups}
    sep = t("pub.weekday_sep", locale)
    sessions = session.exec(
        select(CareSession)
        .where(CareSession.school_id == school.id, CareSession.day >= today, CareSession.day <= today + timedelta(days=UPCOMING_DAYS))
        .order_by(CareSession.day, CareSession.starts_at)
    ).all()
    rows = [
        (
            s.day.isoformat() + " " + _weekday(s.day.isoweekday(), locale),
            # Stored in UTC, shown on the school's clock.
            f"{_hm(clock.to_local(s.starts_at, school).time())}–{_hm(clock.to_local(s.ends_at, school).time())}",
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
                    weekdays=sep.join(_weekday(d, locale) for d in g.weekdays),
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
