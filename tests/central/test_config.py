"""Central's settings: what refuses to start."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from central.core.config import Settings
from central.core.errors import Invalid

STRONG = "k" * 32  # exactly the shortest token allowed off the loopback
SHORT = "k" * 31


@pytest.mark.parametrize("environment", ["development", "production"])
@pytest.mark.parametrize(
    ("host", "token", "refused"),
    [
        ("0.0.0.0", "dev-token-change-me", True),  # the default token, open to the network
        ("0.0.0.0", SHORT, True),
        ("::", SHORT, True),
        ("192.168.1.20", "dev-token-change-me", True),
        ("central.school.lan", SHORT, True),  # a name may resolve to anything
        ("0.0.0.0", STRONG, False),
        ("0.0.0.0", "", False),  # the service token turned off
        ("127.0.0.1", "dev-token-change-me", False),
        ("localhost", SHORT, False),
        ("::1", SHORT, False),
        ("127.0.0.2", SHORT, False),
    ],
)
def test_an_open_bind_needs_a_long_service_token_whatever_the_environment(environment, host, token, refused):
    if environment != "development" and token == "dev-token-change-me":
        return  # refused already when the settings are built (below)
    settings = Settings(environment=environment, api_token=token)
    if refused:
        with pytest.raises(Invalid) as caught:
            settings.check_bind(host)
        assert caught.value.text("en").startswith(f"Refusing to listen on {host}: SCHOOLGATE_API_TOKEN")
        assert "32" in caught.value.text("en") and "32 字节" in str(caught.value)
    else:
        settings.check_bind(host)


def test_a_multibyte_token_counts_bytes():
    Settings(api_token="密" * 11).check_bind("0.0.0.0")  # 33 bytes of UTF-8
    with pytest.raises(Invalid):
        Settings(api_token="密" * 10).check_bind("0.0.0.0")  # 30 bytes


def test_the_summer_and_winter_timetables_start_on_different_days():
    with pytest.raises(ValidationError) as refused:
        Settings(summer_from="05-01", winter_from="05-01")
    assert "SCHOOLGATE_SUMMER_FROM and SCHOOLGATE_WINTER_FROM are both 05-01" in str(refused.value)
    assert Settings(summer_from="10-01", winter_from="05-01").summer_from == "10-01"  # either order is a year
