"""What every request must pass before a route sees it: a bounded body.

``RequestLimits`` is plain ASGI middleware in front of the whole app (API, kiosks' routes, pages):

- The body is read here, up to a limit, before any route or parser runs: ``SCHOOLGATE_REQUEST_MAX_BYTES``
  for JSON and forms, ``SCHOOLGATE_UPLOAD_MAX_BYTES`` for ``multipart/form-data`` (photo uploads). A
  ``Content-Length`` above it is refused at once, unread; a chunked body is refused as soon as it
  passes it. Either way a 413 with the limit in the caller's language. A 200 MB body on the open
  login endpoint used to be read whole (central went from 150 MB to 1.1 GB).

The body, once read, is handed to the app unchanged.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from central.core.config import Settings
from central.i18n import CATALOGUE, pick_locale, t

CATALOGUE.update(
    {
        "body_too_large": {
            "zh_CN": "请求体过大：最多 {max} 字节",
            "en": "The request body is too large: at most {max} bytes",
        },
    }
)

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
