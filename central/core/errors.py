"""Errors of central's service functions, by what the caller did wrong; the API maps each to a status.

Messages come from the catalogue (``central.core.i18n``), so a page or an API answer shows them in the
reader's language.
"""

from __future__ import annotations

from central.core.i18n import LocalizedError


class Invalid(LocalizedError):
    """The input is malformed or breaks a rule (HTTP 422)."""


class Unauthenticated(LocalizedError):
    """No valid credentials (HTTP 401)."""


class Forbidden(LocalizedError):
    """The caller is known but may not do this (HTTP 403)."""


class Missing(LocalizedError):
    """What was named does not exist, or the caller may not know that it does (HTTP 404)."""


class Conflict(LocalizedError):
    """The request clashes with the current state: a used code, a taken name (HTTP 409)."""


class Unavailable(LocalizedError):
    """Central lacks something it needs for this, through no fault of the caller: a Chinese font to
    write a PDF with (HTTP 503); the message names what is missing and how to provide it."""


STATUS = {Invalid: 422, Unauthenticated: 401, Forbidden: 403, Missing: 404, Conflict: 409, Unavailable: 503}


def status_of(exc: LocalizedError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400
