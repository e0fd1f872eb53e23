"""What every request must pass before a route sees it: a bounded body, and no NUL in its text.

``RequestLimits`` is plain ASGI middleware in front of the whole app (API, kiosks' routes, pages):

- The body is read here, up to a limit, before any route or parser runs: ``SCHOOLGATE_REQUEST_MAX_BYTES``
  for JSON and forms, ``SCHOOLGATE_UPLOAD_MAX_BYTES`` for ``multipart/form-data`` (photo uploads). A
  ``Content-Length`` above it is refused at once, unread; a chunked body is refused as soon as it
  passes it. Either way a 413 with the limit in the caller's language. A 200 MB body on the open
  login endpoint used to be read whole (central went from 150 MB to 1.1 GB).
- A NUL character (``\\u0000`` in JSON, ``%00`` in a path or query) is refused with a 422 naming
  where it was. PostgreSQL cannot store NUL in text, so it used to fail at the INSERT as a 500; it is
  refused on SQLite too, so both databases answer alike and no stored name hides a NUL.

The body, once read, is handed to the app unchanged.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from central.core.config import Settings
from central.core.i18n import pick_locale, t

NUL = "\x00"


class _TooLarge(Exception):
    pass


class RequestLimits:
    def __init__(self, app, *, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        content_type = headers.get("content-type", "").lower()
        upload = content_type.startswith("multipart/form-data")
        limit = self.settings.upload_max_bytes if upload else self.settings.request_max_bytes
        locale = _locale(scope, headers)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit, locale)
            return
        try:
            body, rest = await _read(receive, limit)
        except _TooLarge:
            await _too_large(send, limit, locale)
            return
        where = _nul_in_path_or_query(scope) or (None if upload else _nul_in_body(body, content_type))
        if where:
            await _answer(send, 422, {"detail": [{"loc": where, "msg": t("nul_in_text", locale, where=".".join(map(str, where))), "type": "nul_in_text"}]})
            return
        await self.app(scope, _replay(body, rest, receive), send)


async def _read(receive, limit: int) -> tuple[bytes, list[dict]]:
    """The whole body (at most ``limit`` bytes) and any message after it (a disconnect)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), [message]
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), []


def _replay(body: bytes, rest: list[dict], receive):
    pending = [{"type": "http.request", "body": body, "more_body": False}, *rest]

    async def replayed() -> dict:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


def _locale(scope, headers: dict[str, str]) -> str:
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    return pick_locale(query.get("lang"), headers.get("accept-language"))


def _nul_in_path_or_query(scope) -> list[str] | None:
    if NUL in scope.get("path", ""):
        return ["path"]
    for key, value in parse_qsl(scope.get("query_string", b"").decode("utf-8", "replace"), keep_blank_values=True):
        if NUL in key or NUL in value:
            return ["query", key.replace(NUL, "\\u0000")]
    return None


def _nul_in_body(body: bytes, content_type: str) -> list[str | int] | None:
    if b"\x00" not in body and b"\\u0000" not in body:
        return None
    if content_type.startswith("application/x-www-form-urlencoded"):
        for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            if NUL in key or NUL in value:
                return ["body", key.replace(NUL, "\\u0000")]
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None  # not JSON we can read: the route's own parser answers with its error
    # Walked with a stack, not recursion: the document may be as deep as the parser allowed.
    stack: list[tuple[list[str | int], object]] = [(["body"], document)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            if NUL in value:
                return where
        elif isinstance(value, dict):
            for key, item in value.items():
                if NUL in key:
                    return [*where, key.replace(NUL, "\\u0000")]
                stack.append(([*where, key], item))
        elif isinstance(value, list):
            stack.extend(([*where, i], item) for i, item in enumerate(value))
    return None


async def _too_large(send, limit: int, locale: str) -> None:
    # The rest of the body is never read: the connection closes after the answer.
    await _answer(send, 413, {"detail": t("body_too_large", locale, max=limit)}, close=True)


async def _answer(send, status: int, payload: dict, *, close: bool = False) -> None:
    body = json.dumps(payload, ensure_ascii=False).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
