"""The long-running commands' logging: one line per record, text or JSON, and nothing in it that must
not be in a log file.

Logs are copied around (journald, a support ticket, a chat with the vendor), so whatever a line
holds is masked before it is written, whoever logged it and however (arguments, ``extra`` fields,
an exception's text):

- a card UID (a run of 8 or more hex digits, or hex bytes joined by ``:``) keeps its last 4 hex
  digits: ``04A1B2C3`` -> ``****B2C3``. Hex secrets, signatures and hashes are such runs too and
  are cut the same way, and so is a long decimal number (a UID may be all digits); a UUID (an
  event's id) is not, as its groups are joined by ``-``;
- the value after ``card``, ``uid`` or ``cards`` keeps its last 4 characters, whatever its form;
- a mainland mobile number keeps its first 3 and last 4 digits: ``13812345678`` -> ``138****5678``;
- the value after ``token``, ``password``, ``secret``, ``authorization`` and the like, a
  ``Bearer`` credential and the password in a URL (``mqtt://central:PASSWORD@host``) become ``***``.

The rules are deliberately blunt: a masked hash costs a look in the database, an unmasked UID
in a ticket cannot be taken back.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
NOISY = ("amqtt", "transitions", "uvicorn.access", "alembic", "httpx")

_SECRET_KEYS = r"(?:access_token|api_token|metrics_token|refresh_token|token|password|passwd|pass|secret|api_key|apikey|authorization)"
_QUOTE = r"[\"']?"
# key, then either a quoted value (spaces and all) or a bare one; a Bearer credential is the next rule's.
_SECRET_VALUE = re.compile(
    rf"(?i)(\b{_SECRET_KEYS}[\"']?\s*[:=]\s*)(?:([\"'])((?:(?!\2).)*)\2|(?!\*\*\*|(?:bearer|basic)\s)([^\s\"',;&}}]+))"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+(?!\*\*\*)[A-Za-z0-9._~+/=-]+")
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)([^\s@/]+)(@)")
_CARD_VALUE = re.compile(rf"(?i)(\b(?:card|uid|card_uid|cards){_QUOTE}\s*[:=]\s*\[?{_QUOTE})([^\s\"',;\]}}]+)")
_HEX_RUN = re.compile(r"(?<![0-9A-Za-z_-])(?:[0-9A-Fa-f]{2}:){3,9}[0-9A-Fa-f]{2}(?![0-9A-Za-z_-])|(?<![0-9A-Za-z_-])[0-9A-Fa-f]{8,}(?![0-9A-Za-z_-])")
_PHONE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?(1[3-9]\d)[- ]?(\d{4})[- ]?(\d{4})(?!\d)")


def _keep_last(value: str, keep: int = 4) -> str:
    plain = value.replace(":", "")
    return "****" + plain[-keep:] if len(plain) > keep else "****"


def redact(text: str) -> str:
    """The text with card UIDs, phone numbers, tokens and passwords masked (module docstring)."""
    text = _URL_PASSWORD.sub(r"\1***\3", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} ***", text)
    text = _SECRET_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}***{m.group(2)}" if m.group(2) else f"{m.group(1)}***", text)
    text = _CARD_VALUE.sub(lambda m: m.group(1) + (m.group(2) if m.group(2).startswith("****") else _keep_last(m.group(2))), text)
    text = _PHONE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)
    return _HEX_RUN.sub(lambda m: _keep_last(m.group(0)), text)


class RedactingFormatter(logging.Formatter):
    """The usual one-line text, masked."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


# What every LogRecord has; anything else on a record came in ``extra=`` and goes into the JSON.
# uvicorn's ``color_message`` is its message again with terminal colours: not for a JSON line.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC), ``level``, ``logger``, ``message``, the record's
    ``extra`` fields, and ``exc`` (the traceback, in the same line). Each string is masked before
    it is serialized, so JSON's escaping cannot hide a value from the rules."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = _masked(value)
        if record.exc_info:
            line["exc"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exc"] = redact(record.exc_text)
        return json.dumps(line, ensure_ascii=False, default=str)


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: ("***" if re.fullmatch(_SECRET_KEYS, str(k), re.I) else _masked(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    if isinstance(value, bool | int | float) or value is None:
        return value
    return redact(str(value))


class _StandardError(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when a line is written, not as it was at set-up: a command run
    in-process (a test's CliRunner) swaps standard error and closes its own, while the ingest's threads
    go on logging."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup(*, verbose: bool = False, fmt: str = "text", stream=None) -> logging.Handler:
    """Log to standard error (or ``stream``) in ``fmt`` (``text`` or ``json``), masked; returns the
    handler. Replaces the root logger's handlers, so calling it again changes the format."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: text or json")
    handler = logging.StreamHandler(stream) if stream is not None else _StandardError()
    handler.setFormatter(JsonFormatter() if fmt == "json" else RedactingFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler
