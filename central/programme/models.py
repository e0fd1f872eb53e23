"""The after-school service: terms and the calendar, dismissal times, vendors, staff, interest groups,
care sessions and duty, notices, enrollment by consent (P2, P3, P5, P6, P7).
"""

from __future__ import annotations

from datetime import date, datetime, time

import sqlalchemy as sa
from sqlmodel import Field, SQLModel, col

from central.core.clock import utcnow
from central.core.columns import LocalTime, RowId, utc_column


class TermBase(SQLModel):
    name: str = Field(min_length=1, max_length=100)
    starts_on: date
    ends_on: date
    # P3.2: the day the summer / winter timetable starts inside this term; None takes the
    # district default (Settings.summer_from / winter_from).
    summer_from: date | None = None
    winter_from: date | None = None


class TermCreate(TermBase):
    pass


class Term(TermBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    created_by: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


class TermPublic(TermBase):
    id: int


class CalendarDayBase(SQLModel):
    day: date
    kind: str = Field(max_length=16)  # "holiday" or "makeup" (调休: a weekend day taught as a weekday)
    # A make-up day runs the timetable of this ISO weekday (1 = Monday); None: every group runs.
    follows_weekday: int | None = Field(default=None, ge=1, le=7)
    note: str = Field(default="", max_length=200)


class CalendarDayCreate(CalendarDayBase):
    pass


class CalendarDay(CalendarDayBase, table=True):
    __tablename__ = "calendar_day"
    __table_args__ = (sa.UniqueConstraint("school_id", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    created_by: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


class CalendarDayPublic(CalendarDayBase):
    id: int


class DismissalTimeBase(SQLModel):
    grade: str = Field(min_length=1, max_length=32)
    season: str = Field(max_length=8)  # "summer" or "winter" (P3.2)
    dismissal: time  # the grade's regular dismissal, school's local time


class DismissalTimeCreate(DismissalTimeBase):
    dismissal: LocalTime


class DismissalTime(DismissalTimeBase, table=True):
    __tablename__ = "dismissal_time"
    __table_args__ = (sa.UniqueConstraint("school_id", "grade", "season"),)

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    updated_by: str = Field(max_length=100)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


class DismissalTimePublic(DismissalTimeBase):
    id: int


class VendorBase(SQLModel):
    name: str = Field(min_length=1, max_length=200)
    licence: str = Field(default="", max_length=200)  # the institution's licence or registration number
    description: str = Field(default="", max_length=1000)


class VendorCreate(VendorBase):
    pass


class Vendor(VendorBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    state: str = Field(default="pending", max_length=16)  # pending, approved, refused (P6.2)
    created_by: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


class VendorApproval(SQLModel, table=True):
    """One step of P6.2's chain, recorded once: review panel, Party organisation, district, city."""

    __tablename__ = "vendor_approval"
    __table_args__ = (sa.UniqueConstraint("vendor_id", "step"),)

    id: int | None = Field(default=None, primary_key=True)
    vendor_id: int = Field(foreign_key="vendor.id", index=True)
    step: str = Field(max_length=16)
    approved: bool
    note: str = Field(default="", max_length=1000)  # the panel's members, the document number, a reason
    decided_by: str = Field(max_length=100)
    decided_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


class VendorApprovalPublic(SQLModel):
    step: str
    approved: bool
    note: str
    decided_by: str
    decided_at: datetime


class VendorPublic(VendorBase):
    id: int
    state: str
    approvals: list[VendorApprovalPublic] = []
    next_step: str | None = None


class StaffBase(SQLModel):
    name: str = Field(min_length=1, max_length=100)
    kind: str = Field(max_length=16)  # teacher, employee, guard, volunteer, third_party (P6.1, P6.5, P9.3)
    phone: str = Field(default="", max_length=32)
    # The school lets this person sign in at a gate kiosk as the guard on duty (a guard always may).
    gate_guard: bool = False


class StaffCreate(StaffBase):
    vendor_id: RowId | None = None  # required for third_party staff (P6.2)


class StaffUpdate(SQLModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    phone: str | None = Field(default=None, max_length=32)
    active: bool | None = None
    gate_guard: bool | None = None


class Staff(StaffBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    vendor_id: int | None = Field(default=None, foreign_key="vendor.id", index=True)
    active: bool = True
    created_by: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


class StaffPublic(StaffBase):
    id: int
    vendor_id: int | None
    active: bool
    cards: list[str] = []
    may_serve: bool  # False for third-party staff until their vendor's every approval is in (P6.2)


class StaffCard(SQLModel, table=True):
    """A staff member's card: they tap in and out like students (P6.3)."""

    __tablename__ = "staff_card"
    __table_args__ = (sa.UniqueConstraint("school_id", "uid"),)

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    staff_id: int = Field(foreign_key="staff.id", index=True)
    uid: str = Field(max_length=32)  # canonical: upper-case hex, as Card.uid


class InterestGroupBase(SQLModel):
    name: str = Field(min_length=1, max_length=100)
    category: str = Field(max_length=32)  # from P5.1's allowed list (central/programme/groups.py)
    description: str = Field(default="", max_length=1000)
    capacity: int = Field(ge=1, le=500)
    place: str = Field(min_length=1, max_length=200)  # a room, or an outside venue (P2.4)
    off_site: bool = False
    # Local start; None starts at the latest regular dismissal of the group's grades (P3.3).
    start_time: time | None = None
    periods: int = Field(default=2, ge=1)  # P3.2: 40-minute periods; at most Settings.max_periods


class InterestGroupCreate(InterestGroupBase):
    start_time: LocalTime | None = None
    grades: list[str] = Field(min_length=1)
    weekdays: list[int] = Field(default=[1, 2, 3, 4, 5])  # ISO weekdays the group meets
    staff_id: RowId | None = None  # the staff member in charge


class InterestGroupUpdate(SQLModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    capacity: int | None = Field(default=None, ge=1, le=500)
    place: str | None = Field(default=None, min_length=1, max_length=200)
    off_site: bool | None = None
    staff_id: RowId | None = None


class InterestGroup(InterestGroupBase, table=True):
    __tablename__ = "interest_group"
    __table_args__ = (sa.UniqueConstraint("school_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    grades: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    weekdays: list[int] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    staff_id: int | None = Field(default=None, foreign_key="staff.id", index=True)
    created_by: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


class InterestGroupPublic(InterestGroupBase):
    id: int
    grades: list[str]
    weekdays: list[int]
    staff_id: int | None
    enrolled: int = 0  # approved and active enrollments, counted against capacity


class CareSession(SQLModel, table=True):
    """A session: one group's care on one school day (P3.1). Named so as not to shadow sqlmodel's Session."""

    __tablename__ = "care_session"
    __table_args__ = (sa.UniqueConstraint("group_id", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    group_id: int = Field(foreign_key="interest_group.id", index=True)
    day: date = Field(index=True)  # the school's local date
    starts_at: datetime = Field(sa_column=utc_column(nullable=False))
    ends_at: datetime = Field(sa_column=utc_column(nullable=False))
    place: str = Field(max_length=200)
    created_by: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


class DutyAssignment(SQLModel, table=True):
    """Who serves a session (the duty schedule, P6.3); the group's staff member in charge is one."""

    __tablename__ = "duty_assignment"
    __table_args__ = (sa.UniqueConstraint("session_id", "staff_id"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="care_session.id", index=True)
    staff_id: int = Field(foreign_key="staff.id", index=True)
    assigned_by: str = Field(max_length=100)
    assigned_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


class CareSessionPublic(SQLModel):
    id: int
    group_id: int
    group: str
    day: date
    starts_at: datetime  # shown in the school's zone
    ends_at: datetime
    place: str
    staff: list[int] = []
    expected: int = 0  # students with an active enrollment in the group
    over_ratio: bool = False  # P9.2: more than Settings.ratio_max students per staff member on duty


class NoticeBase(SQLModel):
    text: str = Field(min_length=1, max_length=20000)  # rules, content and pickup times (P2.2)


class NoticeCreate(NoticeBase):
    pass


class Notice(NoticeBase, table=True):
    """The tripartite notice (告知书), versioned per school: a new text is a new version."""

    __table_args__ = (sa.UniqueConstraint("school_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    version: int
    text: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    published_by: str = Field(max_length=100)
    published_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


class NoticePublic(NoticeBase):
    version: int
    published_by: str
    published_at: datetime


class EnrollmentCreate(SQLModel):
    student: str = Field(min_length=1, max_length=32)  # student_no
    guardian_id: RowId  # the guardian applying (P2.1 家长申请)
    application: str = Field(min_length=1, max_length=5000)  # the written application, kept as given
    group_id: RowId | None = None  # the group asked for; the school may decide at approval


class Enrollment(SQLModel, table=True):
    """One student's place in one group, reached only through P2.1's chain (central/programme/enrollment.py)."""

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    student_id: int = Field(foreign_key="student.id", index=True)
    group_id: int | None = Field(default=None, foreign_key="interest_group.id", index=True)
    guardian_id: int | None = Field(default=None, foreign_key="guardian.id")
    state: str = Field(default="applied", max_length=16, index=True)
    application: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    rejection_reason: str | None = Field(default=None, max_length=1000)
    withdrawal_request: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    withdrawn_on: date | None = None  # P7.4: the refund counts service days after this date
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


class EnrollmentStep(SQLModel, table=True):
    """Every state change of an enrollment: from, to, who, when (append-only)."""

    __tablename__ = "enrollment_step"

    id: int | None = Field(default=None, primary_key=True)
    enrollment_id: int = Field(foreign_key="enrollment.id", index=True)
    from_state: str | None = Field(default=None, max_length=16)
    to_state: str = Field(max_length=16)
    actor: str = Field(max_length=100)
    note: str = Field(default="", max_length=1000)
    at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


def enrollment_in_service(day: date) -> sa.ColumnElement[bool]:
    """The WHERE clause of enrollments that put their student in the service on ``day`` (a school date).

    Active ones; and an active one withdrawn as of a later date (P7.4), until that date: the request
    is recorded at once (state ``withdrawn``), the child stays in the group, on the kiosks' roster and
    among a session's expected students up to the day before ``withdrawn_on``, and is out from it.
    A withdrawal from a state that never served (applied, reviewed, approved) keeps no one in.

    Here, beside the tables, so that enrollment, groups (seats), schedule (expected students),
    accounts (a teacher's children) and the roster all ask the one same question.
    """
    left_while_active = sa.exists().where(
        col(EnrollmentStep.enrollment_id) == Enrollment.id,
        col(EnrollmentStep.from_state) == "active",
        col(EnrollmentStep.to_state) == "withdrawn",
    )
    return sa.or_(
        col(Enrollment.state) == "active",
        sa.and_(col(Enrollment.state) == "withdrawn", col(Enrollment.withdrawn_on) > day, left_while_active),
    )


class NoticeSignature(SQLModel, table=True):
    """One party's signature of one notice version for one enrollment (P2.2)."""

    __tablename__ = "notice_signature"
    __table_args__ = (sa.UniqueConstraint("enrollment_id", "notice_id", "party"),)

    id: int | None = Field(default=None, primary_key=True)
    enrollment_id: int = Field(foreign_key="enrollment.id", index=True)
    notice_id: int = Field(foreign_key="notice.id")
    party: str = Field(max_length=16)  # school, guardian, student
    signer: str = Field(max_length=100)  # the name signed
    guardian_id: int | None = Field(default=None, foreign_key="guardian.id")
    recorded_by: str = Field(max_length=100)
    paper: bool = False  # a school admin recorded the guardian's or student's signature from a paper form
    signed_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))


class EnrollmentStepPublic(SQLModel):
    from_state: str | None
    to_state: str
    actor: str
    note: str
    at: datetime


class SignaturePublic(SQLModel):
    party: str
    signer: str
    notice_version: int
    signed_at: datetime
    paper: bool = False
    """Recorded by a school admin from a signed paper form, not signed in the guardian's own account."""
    recorded_by: str = ""


class EnrollmentPublic(SQLModel):
    id: int
    student: str
    group_id: int | None
    guardian_id: int | None
    state: str
    application: str
    rejection_reason: str | None = None
    withdrawal_request: str | None = None
    withdrawn_on: date | None = None
    steps: list[EnrollmentStepPublic] = []
    signatures: list[SignaturePublic] = []


class PublicProfileBase(SQLModel):
    fee_fen: int | None = Field(default=None, ge=0)  # per student per month, integer fen; None: not published
    contact: str = Field(default="", max_length=200)
    apply_note: str = Field(default="", max_length=2000)  # where to get the form, deadlines (shown as written)


class PublicProfile(PublicProfileBase, table=True):
    __tablename__ = "public_profile"

    school_id: int = Field(foreign_key="school.id", primary_key=True)
    updated_by: str = Field(max_length=100)
    updated_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))


class AbsenceExcuse(SQLModel, table=True):
    """A child's absence on one school day excused (请假): marked by the teacher or the school with a note
    (central/programme/excuses.py). The live roster shows the child absent and excused."""

    __tablename__ = "absence_excuse"
    __table_args__ = (sa.UniqueConstraint("student_id", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    student_id: int = Field(foreign_key="student.id", index=True)
    day: date = Field(index=True)  # the school's local date
    note: str = Field(default="", max_length=500)
    by_user_id: int | None = Field(default=None, foreign_key="app_user.id")
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(nullable=False))
