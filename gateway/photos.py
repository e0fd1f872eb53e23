"""Kiosk requests to central over HTTP: signed with the kiosk's secret; the photo cache built on them.

A kiosk has no user and no password; it has the secret it signs its events with. Each request
carries ``X-SG-Time`` (Unix seconds) and ``X-SG-Signature``, the hex HMAC-SHA256 of
``sg-kiosk-http/v1``, the method, the path, the query and that time, one per line. Central accepts
a request whose time is within a few minutes of its own clock (setting ``kiosk_request_skew_s``).
A replay inside that window fetches the same thumbnail again, which the listener saw anyway; TLS in
front of central is what keeps photos from the listener.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from urllib.parse import quote

import httpx

LABEL = "sg-kiosk-http/v1"
TIME_HEADER = "X-SG-Time"
SIGNATURE_HEADER = "X-SG-Signature"


def request_signature(key: bytes, *, method: str, path: str, query: str, at: int) -> str:
    message = "\n".join((LABEL, method.upper(), path, query, str(at)))
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def signed_headers(secret_hex: str, *, method: str, path: str, query: str = "", at: int | None = None) -> dict[str, str]:
    at = int(time.time()) if at is None else at
    sig = request_signature(bytes.fromhex(secret_hex), method=method, path=path, query=query, at=at)
    return {TIME_HEADER: str(at), SIGNATURE_HEADER: sig}


class PhotoCache:
    """Thumbnails of a school's students and guardians, kept on the kiosk's disk for the pickup screen.

    ``sync()`` asks central which photos exist (with their ETags), fetches the new and changed ones
    and deletes the ones gone; ``path()`` answers offline from the disk.
    """

    def __init__(
        self, base_url: str, *, school: str, kiosk: str, secret: str, folder: Path, timeout: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.base = f"/api/v1/kiosks/{quote(school, safe='')}/{quote(kiosk, safe='')}/photos"
        self.secret = secret
        self.folder = folder
        self.client = client or httpx.Client(base_url=base_url, timeout=timeout)
        self.index_path = folder / "index.json"
        folder.mkdir(parents=True, exist_ok=True)
        self.index: dict[str, str] = json.loads(self.index_path.read_text()) if self.index_path.exists() else {}

    def _get(self, path: str) -> httpx.Response:
        return self.client.get(path, headers=signed_headers(self.secret, method="GET", path=path))

    def _file(self, key: str) -> Path:
        return self.folder / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".jpg")

    def path(self, kind: str, ref: str) -> Path | None:
        found = self._file(f"{kind}/{ref}")
        return found if f"{kind}/{ref}" in self.index and found.exists() else None

    def sync(self) -> dict[str, int]:
        """Bring the cache to central's list; raises ``httpx.HTTPError`` when central cannot be reached."""
        listed = self._get(self.base)
        listed.raise_for_status()
        wanted = {f"{p['kind']}/{p['id']}": p["etag"] for p in listed.json()}
        fetched = removed = 0
        for key, etag in wanted.items():
            if self.index.get(key) == etag and self._file(key).exists():
                continue
            kind, ref = key.split("/", 1)
            got = self._get(f"{self.base}/{kind}/{quote(ref, safe='')}")
            if got.status_code == 404:  # removed between the list and now
                continue
            got.raise_for_status()
            self._file(key).write_bytes(got.content)
            self.index[key] = got.headers.get("etag", etag).strip('"')
            fetched += 1
        for key in set(self.index) - set(wanted):
            self._file(key).unlink(missing_ok=True)
            del self.index[key]
            removed += 1
        self.index_path.write_text(json.dumps(self.index, sort_keys=True))
        return {"photos": len(self.index), "fetched": fetched, "removed": removed}

    def close(self) -> None:
        self.client.close()
