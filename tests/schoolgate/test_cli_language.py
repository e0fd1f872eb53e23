"""The command line speaks zh_CN or en: --lang first, then LC_ALL / LC_MESSAGES / LANG, else zh_CN."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from schoolgate.cli import app


def run(*args: str, **env: str):
    return CliRunner().invoke(app, list(args), env=env)


@pytest.fixture
def db(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'c.sqlite3'}"


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ((), {}, "数据库已是最新结构"),
        ((), {"LANG": "en_US.UTF-8"}, "The database is at the newest schema"),
        ((), {"LANG": "en_US.UTF-8", "LC_ALL": "zh_CN.UTF-8"}, "数据库已是最新结构"),
        ((), {"LC_MESSAGES": "en_GB.UTF-8"}, "The database is at the newest schema"),
        (("--lang", "en"), {"LANG": "zh_CN.UTF-8"}, "The database is at the newest schema"),
        (("--lang", "zh_CN"), {"LC_ALL": "en_US.UTF-8"}, "数据库已是最新结构"),
    ],
    ids=["unset", "LANG", "LC_ALL first", "LC_MESSAGES", "--lang over LANG", "--lang over LC_ALL"],
)
def test_output_follows_lang_and_the_environment(db, args, env, expected):
    result = run(*args, "central", "migrate", SCHOOLGATE_DATABASE_URL=db, **env)
    assert result.exit_code == 0, result.output
    assert result.output == expected + "\n"


def test_a_catalogue_error_is_in_the_chosen_language():
    english = run("central", "serve", "--host", "0.0.0.0", LANG="en_US.UTF-8")
    chinese = run("central", "serve", "--host", "0.0.0.0")
    assert english.exit_code == chinese.exit_code == 2
    assert english.output.startswith("Refusing to listen on 0.0.0.0: SCHOOLGATE_API_TOKEN is the default")
    assert chinese.output.startswith("拒绝在 0.0.0.0 上监听：SCHOOLGATE_API_TOKEN 为默认值")


def test_the_command_line_own_errors_are_in_the_chosen_language(tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("x", encoding="utf-8")
    args = ("gateway", "mosquitto-config", "--out", str(tmp_path / "m"), "--tls-cert", str(cert))
    assert run(*args).output == "--tls-cert 与 --tls-key 须同时给出\n"
    assert run(*args, LANG="en_US.UTF-8").output == "--tls-cert and --tls-key go together\n"


def test_a_reader_error_is_in_the_chosen_language():
    # The hardware tools took --locale before; both spellings work.
    for option in ("--lang", "--locale"):
        result = run("hardware", "read", "--reader", "pcsc:0", option, "en")
        assert result.exit_code == 2, result.output
        assert result.output.startswith("Reader: unknown reader spec 'pcsc:0'; valid forms are: sim[:NAME]")
    assert run("hardware", "read", "--reader", "pcsc:0").output.startswith("读卡器：未知的读卡器设置 'pcsc:0'；有效的写法：sim[:NAME]")


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (("--lang", "fr", "central", "migrate"), {}, "--lang 只能是 zh_CN, en，不能是 fr\n"),
        (("--lang", "fr", "central", "migrate"), {"LANG": "en_US.UTF-8"}, "--lang must be one of zh_CN, en, not fr\n"),
        (("demo", "--lang", "de"), {"LANG": "en_US.UTF-8"}, "--lang must be one of zh_CN, en, not de\n"),
    ],
)
def test_an_unknown_language_is_refused_in_the_environment_language(db, args, env, expected):
    result = run(*args, SCHOOLGATE_DATABASE_URL=db, **env)
    assert (result.exit_code, result.output) == (2, expected)


def test_kiosk_run_speaks_the_chosen_language(tmp_path):
    args = ("kiosk", "run", "--school", "s1", "--kiosk", "gate-1", "--reader", "pcsc:0", "--no-ui",
            "--data-dir", str(tmp_path), "--mqtt-url", "")
    # A bad reader stops it before the start line: the error is framed in the chosen language.
    assert run(*args, LANG="en_US.UTF-8").output.startswith("Reader: unknown reader spec 'pcsc:0'")
    assert run("--lang", "en", *args).output.startswith("Reader: unknown reader spec 'pcsc:0'")
    assert run(*args).output.startswith("读卡器：未知的读卡器设置 'pcsc:0'")
