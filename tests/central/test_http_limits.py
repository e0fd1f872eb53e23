"""What central's HTTP side refuses before it costs memory or the event loop: photos decoded in a
worker thread under a pixel cap, request bodies limited before they are read, malformed values
that used to end in a 500.

The tests that concern the server as a whole run it under uvicorn on a free port, as deployed.
"""

from __future__ import annotations

import os
import re
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO

import httpx
import pytest
import uvicorn
from PIL import Image
from pydantic import ValidationError

from central.core.config import Settings
from central.core.db import make_engine, migrate
from central.pickup import codes as pickup
from gateway.mqtt import free_port
from sgtest import wait_for


@contextmanager
def served(app) -> Iterator[str]:
    """The world's app under a real uvicorn on a free port (its lifespan already ran in the TestClient)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="central-under-test", daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), timeout=20, what="uvicorn to start")
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def _image(size: tuple[int, int], fmt: str) -> bytes:
    out = BytesIO()
    Image.new("L", size, 128).save(out, fmt)
    return out.getvalue()


# --- item 9: photos ---------------------------------------------------------------------------------


def test_a_decompression_bomb_is_refused_from_its_header(world):
    bomb = _image((5000, 4000), "PNG")  # 20 megapixels of one grey: a few kilobytes on the wire
    assert len(bomb) < 200_000
    got = world.client.put(
        "/api/v1/schools/s1/students/A1/photo?lang=en", files={"file": ("a.png", bomb, "image/png")}, headers=world.as_("admin1")
    )
    assert got.status_code == 422, got.text
    assert got.json()["detail"][0]["msg"] == "The photo has too many pixels (5000×4000); at most 16000000: upload a smaller one"
    zh = world.client.put("/api/v1/schools/s1/students/A1/photo", files={"file": ("a.png", bomb, "image/png")}, headers=world.as_("admin1"))
    assert zh.json()["detail"][0]["msg"] == "照片像素过多（5000×4000），最多 16000000 像素：请上传较小的照片"


def test_a_phone_photo_still_fits(world):
    phone = _image((4032, 3024), "JPEG")  # a 12-megapixel phone camera's photo
    got = world.client.put(
        "/api/v1/schools/s1/students/A1/photo", files={"file": ("a.jpg", phone, "image/jpeg")}, headers=world.as_("admin1")
    )
    assert got.status_code == 200, got.text
    assert (got.json()["width"], got.json()["height"]) == (160, 120)


def test_healthz_answers_while_a_photo_decodes(world, monkeypatch):
    decoding, healthz_answered = threading.Event(), threading.Event()
    real = pickup.make_thumbnail
    seen: dict[str, bool] = {}

    def slow_thumbnail(data, **limits):
        decoding.set()
        # On the event loop this wait would hold /healthz too, and time out unanswered.
        seen["healthz_during_decode"] = healthz_answered.wait(timeout=10)
        return real(data, **limits)

    monkeypatch.setattr(pickup, "make_thumbnail", slow_thumbnail)
    photo = _image((800, 600), "PNG")
    with served(world.client.app) as url, httpx.Client(base_url=url, timeout=30) as client:
        upload: dict[str, httpx.Response] = {}
        uploader = threading.Thread(
            target=lambda: upload.setdefault(
                "r", client.put("/api/v1/schools/s1/students/A1/photo", files={"file": ("a.png", photo, "image/png")}, headers=world.as_("admin1"))
            )
        )
        uploader.start()
        assert decoding.wait(timeout=20), "the upload never reached the decoder"
        try:
            health = httpx.get(f"{url}/healthz", timeout=5)
        finally:
            healthz_answered.set()
            uploader.join(30)
        assert health.status_code == 200
        assert seen["healthz_during_decode"] is True
        assert upload["r"].status_code == 200, upload["r"].text


# --- item 10: request bodies ------------------------------------------------------------------------


def test_an_oversize_body_is_refused_before_it_is_read(world):
    body = b'{"username": "' + b"x" * 2_000_000 + b'", "password": "p"}'
    with served(world.client.app) as url, httpx.Client(base_url=url, timeout=30) as client:
        declared = client.post("/api/v1/auth/login?lang=en", content=body, headers={"content-type": "application/json"})
        assert declared.status_code == 413
        assert declared.json() == {"detail": "The request body is too large: at most 262144 bytes"}

        def chunks():
            for i in range(0, len(body), 65_536):
                yield body[i : i + 65_536]

        chunked = client.post("/api/v1/auth/login", content=chunks(), headers={"content-type": "application/json"})
        assert chunked.request.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in chunked.request.headers
        assert chunked.status_code == 413
        assert chunked.json() == {"detail": "请求体过大：最多 262144 字节"}

        # A body under the limit still reaches the route.
        fine = client.post("/api/v1/auth/login", json={"username": "admin1", "password": "correct horse battery staple"})
        assert fine.status_code == 200, fine.text


def test_uploads_have_their_own_limit(world):
    photo = _image((1200, 900), "PNG")
    big = photo + b"\0" * 6_100_000  # past SCHOOLGATE_UPLOAD_MAX_BYTES (6,000,000) with its form around it
    with served(world.client.app) as url, httpx.Client(base_url=url, timeout=30, headers=world.as_("admin1")) as client:
        path = "/api/v1/schools/s1/students/A1/photo?lang=en"
        ok = client.put(path, files={"file": ("a.png", photo, "image/png")})
        assert ok.status_code == 200, ok.text  # far above the JSON limit, well within an upload's
        refused = client.put(path, files={"file": ("a.png", big, "image/png")})
        assert refused.status_code == 413
        assert refused.json() == {"detail": "The request body is too large: at most 6000000 bytes"}


def test_upload_limit_must_hold_a_photo():
    with pytest.raises(ValidationError, match="SCHOOLGATE_UPLOAD_MAX_BYTES \\(1000000\\) must be above SCHOOLGATE_PHOTO_MAX_BYTES"):
        Settings(upload_max_bytes=1_000_000, photo_max_bytes=5_000_000)


# --- Low: NUL in any string -------------------------------------------------------------------------

GROUP = {"name": "阅读组", "category": "reading", "capacity": 20, "place": "图书室", "grades": ["三年级"]}


@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)
def test_nul_in_any_text_is_a_422_naming_where(world):
    admin = world.as_("admin1")
    named = world.client.post("/api/v1/schools/s1/groups?lang=en", json={**GROUP, "name": "阅读\u0000组"}, headers=admin)
    assert named.status_code == 422, named.text
    assert named.json()["detail"] == [
        {"loc": ["body", "name"], "msg": "body.name contains a NUL character (\\u0000), which no text may hold", "type": "nul_in_text"}
    ]
    nested = world.client.post("/api/v1/schools/s1/groups", json={**GROUP, "grades": ["三年级", "四\u0000年级"]}, headers=admin)
    assert nested.status_code == 422, nested.text
    assert nested.json()["detail"][0]["loc"] == ["body", "grades", 1]
    assert nested.json()["detail"][0]["msg"] == "body.grades.1 含有空字符（NUL，\\u0000），文本中不允许出现"
    in_path = world.client.get("/api/v1/schools/s1/students/A%001", headers=admin)
    assert (in_path.status_code, in_path.json()["detail"][0]["loc"]) == (422, ["path"])
    in_query = world.client.get("/api/v1/schools/s1/groups?note=a%00b", headers=admin)
    assert (in_query.status_code, in_query.json()["detail"][0]["loc"]) == (422, ["query", "note"])
    # A backslash followed by "u0000" is ordinary text, and the group is made.
    plain = world.client.post("/api/v1/schools/s1/groups", json={**GROUP, "name": "阅读\\u0000组"}, headers=admin)
    assert plain.status_code == 201, plain.text
    assert plain.json()["name"] == "阅读\\u0000组"


# --- Low: values that used to end in a 500 ----------------------------------------------------------


@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)
def test_ids_past_the_integer_range_are_422(world):
    admin = world.as_("admin1")
    for too_big in (2**31, 2**63):
        in_body = world.client.post("/api/v1/schools/s1/groups", json={**GROUP, "staff_id": too_big}, headers=admin)
        assert in_body.status_code == 422, in_body.text
        assert in_body.json()["detail"][0]["loc"] == ["body", "staff_id"]
        in_query = world.client.get(f"/api/v1/schools/s1/enrollments?group_id={too_big}", headers=admin)
        assert in_query.status_code == 422, in_query.text
        assert in_query.json()["detail"][0]["loc"] == ["query", "group_id"]
        in_path = world.client.get(f"/api/v1/schools/s1/groups/{too_big}", headers=admin)
        assert in_path.status_code == 422, in_path.text
        planned = world.client.post("/api/v1/schools/s1/sessions/plan", json={"start": "2026-12-07", "end": "2026-12-07", "group_id": too_big}, headers=admin)
        assert planned.status_code == 422, planned.text


@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)
def test_a_time_with_an_offset_is_422(world):
    admin = world.as_("admin1")
    group = world.client.post("/api/v1/schools/s1/groups?lang=en", json={**GROUP, "start_time": "16:00:00+08:00"}, headers=admin)
    assert group.status_code == 422, group.text
    assert group.json()["detail"][0]["msg"] == "The time 16:00:00+08:00 has an offset: give the school's local time without one (e.g. 16:00:00)"
    dismissal = world.client.put(
        "/api/v1/schools/s1/dismissal-times", json={"grade": "三年级", "season": "winter", "dismissal": "15:30:00+08:00"}, headers=admin
    )
    assert dismissal.status_code == 422, dismissal.text
    assert dismissal.json()["detail"][0]["msg"] == "时间 15:30:00+08:00 带有时区偏移：请填写学校当地时间，不带偏移（如 16:00:00）"
    fine = world.client.post("/api/v1/schools/s1/groups", json={**GROUP, "start_time": "16:00:00"}, headers=admin)
    assert fine.status_code == 201, fine.text


def test_a_group_with_a_blank_grade_is_422(world):
    admin = world.as_("admin1")
    for grades in (["  "], ["三年级", ""]):
        got = world.client.post("/api/v1/schools/s1/groups?lang=en", json={**GROUP, "grades": grades}, headers=admin)
        assert got.status_code == 422, got.text
        assert got.json()["detail"][0]["msg"] == "a grade may not be blank: name the grades the group is for"
    assert [g["name"] for g in world.client.get("/api/v1/schools/s1/groups", headers=admin).json()] == ["groupA", "groupB"]


# --- Low: card UIDs stay out of URLs ----------------------------------------------------------------


def test_no_route_takes_a_card_uid_in_its_path(world):
    paths = world.client.get("/openapi.json").json()["paths"]
    assert "/api/v1/schools/{school}/staff/{staff_id}/cards" in paths
    in_paths = {path for path in paths if re.search(r"\{[^}]*(uid|card)[^}]*\}", path, re.IGNORECASE)}
    assert in_paths == set()


def test_a_staff_card_is_removed_by_a_uid_in_the_body(world):
    admin, staff = world.as_("admin1"), world.ids["staffA"]
    added = world.client.post(f"/api/v1/schools/s1/staff/{staff}/cards", json={"uid": "5a5a5a5a"}, headers=admin)
    assert added.status_code == 201, added.text
    assert added.json()["cards"] == ["5A5A5A5A"]
    removed = world.client.post(f"/api/v1/schools/s1/staff/{staff}/cards/remove", json={"uid": "5A5A5A5A"}, headers=admin)
    assert removed.status_code == 200, removed.text
    assert removed.json()["cards"] == []
    again = world.client.post(f"/api/v1/schools/s1/staff/{staff}/cards/remove?lang=en", json={"uid": "5A5A5A5A"}, headers=admin)
    assert again.status_code == 404


# --- Low: central's SQLite file ---------------------------------------------------------------------


def test_the_sqlite_file_is_readable_by_its_owner_alone(tmp_path):
    old_umask = os.umask(0o022)  # a usual umask: files would be created 0644, readable by everyone
    try:
        path = tmp_path / "new" / "central.sqlite3"
        engine = make_engine(f"sqlite:///{path}")
        migrate(engine)
        with engine.connect() as conn:  # WAL mode: the -wal and -shm files exist while connected
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            for extra in ("-wal", "-shm"):
                assert stat.S_IMODE(path.with_name(path.name + extra).stat().st_mode) == 0o600, extra
            conn.rollback()
        engine.dispose()

        loose = tmp_path / "loose.sqlite3"
        loose.touch(mode=0o644)
        make_engine(f"sqlite:///{loose}").dispose()
        assert stat.S_IMODE(loose.stat().st_mode) == 0o600
    finally:
        os.umask(old_umask)
