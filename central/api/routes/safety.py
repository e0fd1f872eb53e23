"""The safety list (issue 14): what a principal must review, filtered by day, kind, gate and child, a
page at a time; each item acknowledged, given a follow-up, or closed, with a note (audited); the list
as CSV and XLSX.

Who: the school admin (the principal) reads and acts; the district reads every school's list and
acts on none (it inspects; the school reviews). Teachers, guards, finance and guardians: no — a
teacher follows their own groups on the live roster, and a guard works the gate, whose events they
see already (``/events``). Every child an answer names is logged as read."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from central.accounts.access import Principal, log_child_reads
from central.api.deps import ERROR_RESPONSES, SchoolDep, SessionDep, require_role
from central.core.i18n import pick_locale
from central.safety import export, items as service
from central.safety.items import Item
from central.schools.models import School

router = APIRouter(prefix="/schools/{school}/safety", tags=["safety"], responses=ERROR_RESPONSES)
Reader = Annotated[Principal, Depends(require_role("school_admin", "district"))]
Admin = Annotated[Principal, Depends(require_role("school_admin"))]
Kind = Literal["pickup_refused", "code_reused", "code_revoked", "override", "late_pickup", "unexcused_absence", "unknown_card",
               "bad_signature", "events_lost", "clock_skew", "gate_silent", "gate_offline"]
GateQuery = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="a gate (kiosk id)")]
ChildQuery = Annotated[str | None, Query(min_length=1, max_length=32, description="a student number")]
KindQuery = Annotated[list[Kind] | None, Query(description="repeat for several kinds")]
ItemPath = Annotated[str, Path(pattern=r"^[a-z]{1,10}:[A-Za-z0-9_.:-]{1,90}$", description="the item's key, e.g. event:<id>")]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class ReviewStep(BaseModel):
    step: str  # acknowledge, follow_up, close
    state: str  # acknowledged, follow_up, closed
    note: str
    by: str
    at: datetime


class SafetyItem(BaseModel):
    key: str  # stable: review steps attach to it
    kind: Kind
    reason: str | None  # a refusal's reason, an override's typed reason, the incident's kind
    at: datetime
    kiosk: str | None
    student: str | None
    name: str | None  # the child's name, when the item names a child of the school
    guardian: str | None
    operator: str | None
    card: str | None
    note: str | None
    detail: str | None
    count: int  # how many the item stands for (gates that raised an alert, incidents counted on one row)
    state: Literal["open", "acknowledged", "follow_up", "closed"]
    review: ReviewStep | None  # the newest step


class SafetyItemDetail(SafetyItem):
    steps: list[ReviewStep]  # every step, oldest first


class SafetyPage(BaseModel):
    items: list[SafetyItem]
    next: str | None = Field(description="the cursor of the next page; null on the last")


class ReviewNote(BaseModel):
    note: str = Field(min_length=1, max_length=1000)


def _filters(day: date | None, kind: list[str] | None, gate: str | None, child: str | None) -> service.Filters:
    return service.Filters(day=day, kinds=tuple(kind or ()), gate=gate, child=child)


def _logged(session, user: Principal, school: School, found: list[Item]) -> None:
    log_child_reads(session, principal=user, students=service.named_students(session, school=school, items=found), what="safety")


def _public(item: Item) -> dict[str, Any]:
    return item.public()


@router.get("/items")
def list_items(
    school: SchoolDep, session: SessionDep, user: Reader,
    day: Annotated[date | None, Query(description="the school's date")] = None,
    kind: KindQuery = None, gate: GateQuery = None, child: ChildQuery = None,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 100,
) -> SafetyPage:
    """Refused pickups by reason (barred first), code misuse, overrides, late pickups, unknown cards, bad
    signatures, events central lost (restored from an older backup), clock skew, silent and offline gates; newest first within each. The next page: ``cursor``
    = the ``next`` of this one (it never skips or repeats an item, whatever arrives in between)."""
    page = service.list_items(session, school=school, filters=_filters(day, kind, gate, child), cursor=cursor, limit=limit)
    _logged(session, user, school, page.items)
    return SafetyPage(items=[_public(i) for i in page.items], next=page.next)


def _export(school, session, user, request: Request, day, kind, gate, child) -> tuple[list[Item], str]:
    found = service.all_items(session, school=school, filters=_filters(day, kind, gate, child))
    _logged(session, user, school, found)
    locale = pick_locale(request.query_params.get("lang"), request.headers.get("accept-language"))
    return found, locale


def _name(school: School, day: date | None, ext: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="safety-{school.code}{"-" + day.isoformat() if day else ""}.{ext}"'}


@router.get("/items.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}, "description": "The list, every page, one row per item"}})
def items_csv(school: SchoolDep, session: SessionDep, user: Reader, request: Request, day: date | None = None,
              kind: KindQuery = None, gate: GateQuery = None, child: ChildQuery = None) -> Response:
    found, locale = _export(school, session, user, request, day, kind, gate, child)
    return Response(export.to_csv(found, school=school, locale=locale), media_type="text/csv; charset=utf-8",
                    headers=_name(school, day, "csv"))


@router.get("/items.xlsx", response_class=Response,
            responses={200: {"content": {XLSX: {}}, "description": "The list, every page, one row per item"}})
def items_xlsx(school: SchoolDep, session: SessionDep, user: Reader, request: Request, day: date | None = None,
               kind: KindQuery = None, gate: GateQuery = None, child: ChildQuery = None) -> Response:
    found, locale = _export(school, session, user, request, day, kind, gate, child)
    return Response(export.to_xlsx(found, school=school, locale=locale), media_type=XLSX, headers=_name(school, day, "xlsx"))


@router.get("/items/{item}")
def get_item(school: SchoolDep, item: ItemPath, session: SessionDep, user: Reader) -> SafetyItemDetail:
    """One item with every review step; another school's item is not found (404)."""
    found = service.get_item(session, school=school, key=item)
    _logged(session, user, school, [found])
    return SafetyItemDetail(**_public(found), steps=found.steps)


def _step(step: str):
    def act(school: SchoolDep, item: ItemPath, body: ReviewNote, session: SessionDep, user: Admin) -> SafetyItemDetail:
        found = service.review(session, school=school, key=item, step=step, note=body.note, actor=user.label)
        _logged(session, user, school, [found])
        return SafetyItemDetail(**_public(found), steps=found.steps)

    act.__name__ = step
    act.__doc__ = {"acknowledge": "Seen, with a note.", "follow_up": "Something is to be done: the note says what.",
                   "close": "Done with: a closed item takes no more steps (409)."}[step]
    return act


router.post("/items/{item}/acknowledge")(_step("acknowledge"))
router.post("/items/{item}/follow-up")(_step("follow_up"))
router.post("/items/{item}/close")(_step("close"))
