"""Central answers in the language the caller prefers most, by Accept-Language's q= weights."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("header", "language", "title"),
    [
        ("en;q=0.1, zh-CN;q=0.9", "zh-CN", "示范小学 课后服务公示"),
        ("fr, en;q=0.5", "en", "示范小学: after-school service"),
        ("zh-CN;q=0, en;q=0.2", "en", "示范小学: after-school service"),
        ("fr", "zh-CN", "示范小学 课后服务公示"),
    ],
)
def test_the_public_page_follows_the_weights(world, header, language, title):
    r = world.client.get("/public/s1", headers={"Accept-Language": header})
    assert r.status_code == 200 and r.headers["content-language"] == language
    assert title in r.text


def test_an_api_error_follows_the_weights(world):
    headers = world.as_("admin1")
    english = world.client.get("/api/v1/schools/s1/notice", headers={**headers, "Accept-Language": "fr, en;q=0.5, zh;q=0.4"})
    chinese = world.client.get("/api/v1/schools/s1/notice", headers={**headers, "Accept-Language": "en;q=0.1, zh-CN;q=0.9"})
    assert (english.status_code, english.json()) == (404, {"detail": "the school has published no notice yet"})
    assert (chinese.status_code, chinese.json()) == (404, {"detail": "学校尚未发布告知书"})
