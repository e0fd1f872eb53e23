"""One-time pickup codes as a kiosk checks them: a keyed digest, never the code itself.

A code is short (6 digits by default) so that a person can read it out; anyone holding a plain hash
of it would find it by trying all 10^6 values in well under a second. So the digest a kiosk receives
is HMAC-SHA256 keyed with that kiosk's own secret (the one it already shares with central and signs
its events with), over the school, the kiosk, the child, the date and the code. Someone who reads the
roster on the broker, a bridge or a backup has no key and cannot search; a digest made for one kiosk
tells nothing at another. Whoever holds a kiosk's disk holds its secret too and could search its own
digests, as with any check that must work offline: codes last one day, name the person who may use
them (the guard checks who it is), and a stolen kiosk's secret is replaced with ``register-kiosk``.

The message starts with a fixed label, so a digest can never equal an event signature made with
the same secret (those are over canonical JSON, which starts with ``{``).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import date

LABEL = "sg-pickup-code/v1"


def normalize_code(text: str) -> str:
    """Digits only: people type ``123 456`` or ``123-456``."""
    return "".join(ch for ch in text if ch.isdigit())


def code_digest(key: bytes, *, school: str, verifier: str, student: str, day: date, code: str) -> str:
    """Hex HMAC-SHA256 of a code for one verifier (a kiosk's id, or ``""`` for central itself)."""
    message = "\n".join((LABEL, school, verifier, student, day.isoformat(), normalize_code(code)))
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def matches(key: bytes, digest: str, *, school: str, verifier: str, student: str, day: date, code: str) -> bool:
    expected = code_digest(key, school=school, verifier=verifier, student=student, day=day, code=code)
    return hmac.compare_digest(expected, digest)
