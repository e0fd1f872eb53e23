"""The console's footer says why the broker refuses the gate, not just "offline" (issue 13)."""

from __future__ import annotations

import pytest

from i18n import t as translate
from kiosk.console import panels
from kiosk.display import SyncState


def line(problem: str | None, locale: str) -> str:
    sync = SyncState(online=False, queue=3, roster_version=7, roster_age_s=60, roster_stale=False, problem=problem)
    return panels.footer(sync, None, lambda key, **kw: translate(key, locale, **kw)).plain


@pytest.mark.parametrize(
    ("problem", "locale", "said"),
    [
        ("login_refused", "en", "Offline: the broker refused the login (wrong password or not authorised); retrying slowly"),
        ("subscription_refused", "en", "The broker refused a subscription: some messages will not arrive"),
        ("refused", "en", "Offline: the broker refused the connection"),
    ],
)
def test_the_reason_the_broker_gives_is_in_the_footer(problem, locale, said):
    assert line(problem, locale).endswith(" · " + said)


def test_offline_without_a_reason_says_only_offline_and_zh_cn_has_every_reason():
    assert "broker" not in line(None, "en")
    for problem in ("login_refused", "subscription_refused", "refused"):
        assert line(problem, "zh_CN") != line(None, "zh_CN")
        assert "link_" not in line(problem, "zh_CN")
