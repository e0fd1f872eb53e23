"""When a guardian link acts (P9.4): not barred, within its dates; and, to take the child, allowed to pick up."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlmodel import col

from central.schools.models import GuardianLink


def link_holds(day: date) -> sa.ColumnElement[bool]:
    """The WHERE clause of guardian links in force on ``day``: not barred, within their dates (P9.4).

    The one test of "does this link act today": seeing the child, issuing and redeeming codes,
    applying and signing all go through it, so an ended link acts nowhere.
    """
    return sa.and_(
        col(GuardianLink.barred).is_(False),
        sa.or_(col(GuardianLink.valid_from).is_(None), col(GuardianLink.valid_from) <= day),
        sa.or_(col(GuardianLink.valid_until).is_(None), col(GuardianLink.valid_until) >= day),
    )


def link_acts_on(link: GuardianLink | None, day: date, *, pick_up: bool = False) -> bool:
    """``link_holds`` for a link already loaded; ``pick_up`` also asks for the right to take the child."""
    return (
        link is not None
        and not link.barred
        and (link.valid_from is None or link.valid_from <= day)
        and (link.valid_until is None or day <= link.valid_until)
        and (link.may_pick_up or not pick_up)
    )
