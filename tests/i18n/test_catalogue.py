"""The one message catalogue: complete in both languages, loud on a typo, and negotiated by q= weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import i18n
from i18n import Msg, MessageError, check, locale_from_env, negotiate, parse_accept_language, t


def test_every_message_has_both_languages_non_empty_and_the_same_placeholders():
    assert [str(p) for p in check.catalogue_problems()] == []


def test_every_key_the_code_names_is_in_the_catalogue_with_its_placeholders():
    problems, _ = check.code_problems()
    assert [str(p) for p in problems] == []


def test_the_catalogue_holds_the_messages_of_every_package():
    # One of each former catalogue: kiosk, hardware's tools, central (a service and a route module).
    assert t("checked_in", "en", name="王一", class_name="3(1)", group="阅读", start="16:00", end="17:20") == (
        "王一 (3(1)) checked in: 阅读 16:00–17:20"
    )
    assert t("stopped", "zh_CN", count=3) == "已停止，共读到 3 次刷卡"
    assert t("pickup.code_used", "en", at="2026-12-02T09:00:00+00:00") == "This code was used at 2026-12-02T09:00:00+00:00"
    assert t("notice.none", "zh_CN") == "学校尚未发布告知书"


def test_a_placeholder_typo_is_an_error_never_a_blank():
    with pytest.raises(MessageError, match=r"'pickup.code_used' \(en\) needs \{at\}"):
        t("pickup.code_used", "en", att="09:00")


def test_an_unknown_key_is_an_error():
    with pytest.raises(MessageError, match="no message 'pickup.code_usde'"):
        t("pickup.code_usde", "en")


def test_none_shows_as_nothing_and_extra_parameters_are_ignored():
    assert t("unknown_card", "en", card=None, name="ignored") == "Unknown card: "


def test_a_message_as_a_parameter_follows_the_outer_language():
    what = Msg("group.kind.new_lessons")
    assert t("group.forbidden", "zh_CN", what=what) == "课后服务不得上新课（P5.2），该兴趣组不能设立"
    assert t("group.forbidden", "en", what=what) == "the service may not be new lessons (P5.2): the group is refused"


def test_a_localized_error_reads_in_any_language():
    error = i18n.LocalizedError("code_missing", id=7)
    assert (str(error), error.text("en")) == ("没有接送码 7", "No pickup code 7")


@pytest.mark.parametrize(
    ("requested", "header", "expected"),
    [
        (None, "en;q=0.1, zh-CN;q=0.9", "zh_CN"),
        (None, "fr, en;q=0.5", "en"),
        (None, None, "zh_CN"),
        (None, "", "zh_CN"),
        (None, "fr, de;q=0.8", "zh_CN"),
        (None, "zh-CN;q=0.2, en;q=0.8", "en"),
        (None, "en;q=0, zh;q=0.1", "zh_CN"),  # q=0: not English at all
        (None, "en;q=0, fr", "zh_CN"),  # q=0 is a refusal, not a last resort
        (None, "en-GB,en;q=0.9", "en"),
        (None, "zh-TW, en;q=0.5", "zh_CN"),  # Chinese before English, even the other script
        (None, "en;q=0.5, zh;q=0.5", "en"),  # equal weights keep the header's order
        (None, "en;q=abc", "en"),
        (None, "*", "zh_CN"),
        ("en", "zh-CN", "en"),  # ?lang= wins
        ("xx", "en", "en"),  # an unsupported ?lang= falls through to the header
        ("zh_CN", "en", "zh_CN"),
    ],
)
def test_accept_language_is_negotiated_by_its_q_weights(requested, header, expected):
    assert negotiate(requested, header) == expected


def test_accept_language_is_parsed_most_wanted_first():
    assert parse_accept_language("da, en-gb;q=0.8, en;q=0.7, fr;q=0") == ["da", "en-gb", "en"]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "zh_CN"),
        ({"LANG": "en_US.UTF-8"}, "en"),
        ({"LANG": "zh_CN.UTF-8"}, "zh_CN"),
        ({"LANG": "C.UTF-8"}, "zh_CN"),
        ({"LANG": "fr_FR.UTF-8"}, "zh_CN"),
        ({"LANG": "zh_CN.UTF-8", "LC_ALL": "en_GB.UTF-8"}, "en"),  # LC_ALL first
        ({"LANG": "en_US.UTF-8", "LC_MESSAGES": "zh_CN.UTF-8"}, "zh_CN"),
        ({"LANG": "en_US.UTF-8", "LC_ALL": ""}, "en"),  # set but empty counts as unset
    ],
)
def test_the_command_line_language_follows_the_posix_variables(environ, expected):
    assert locale_from_env(environ) == expected


@pytest.fixture
def locale_copy(tmp_path) -> Path:
    copy = tmp_path / "i18n" / "locale"
    shutil.copytree(i18n.LOCALE_DIR, copy)
    return copy


def _edit(locale_dir: Path, locale: str, old: str, new: str) -> None:
    path = locale_dir / locale / "LC_MESSAGES" / "schoolgate.po"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize(
    ("locale", "old", "new", "expected"),
    [
        ("en", 'msgstr "This code was used at {at}"', 'msgstr "This code was used at {when}"',
         "pickup.code_used: placeholders differ: zh_CN ['at'], en ['when']"),
        ("en", 'msgstr "Unknown card: {card}"', 'msgstr ""', "'unknown_card' has no text"),
        ("en", 'msgid "unknown_card"\nmsgstr "Unknown card: {card}"\n', "", "unknown_card: has no en text"),
        ("zh_CN", 'msgstr "未登记的卡：{card}"', 'msgstr "未登记的卡：{card"', "'unknown_card' does not format"),
        ("en", 'msgid "unknown_card"', '#, fuzzy\nmsgid "unknown_card"', "'unknown_card' is marked fuzzy"),
        ("en", 'msgid "unknown_card"\nmsgstr "Unknown card: {card}"\n',
         'msgid "unknown_card"\nmsgstr "Unknown card: {card}"\n\nmsgid "unknown_card"\nmsgstr "Unknown card: {card}"\n',
         "'unknown_card' appears 2 times"),
    ],
    ids=["placeholder typo", "empty text", "missing language", "broken brace", "fuzzy", "twice"],
)
def test_the_check_catches_a_broken_catalogue(locale_copy, locale, old, new, expected):
    _edit(locale_copy, locale, old, new)
    found = [str(p) for p in check.catalogue_problems(locale_copy)]
    assert any(expected in problem for problem in found), found


def test_the_check_catches_an_unknown_key_and_a_left_out_placeholder_in_code(tmp_path):
    planted = tmp_path / "central" / "planted.py"
    planted.parent.mkdir()
    planted.write_text(
        "from central.core.errors import Invalid\n"
        "from i18n import t\n"
        "def f(locale):\n"
        "    t('pub.safety.ratio', locale)\n"
        "    raise Invalid('enrollment.not_foundd', id=1)\n",
        encoding="utf-8",
    )
    (tmp_path / "central" / "errors.py").write_text(
        "from i18n import LocalizedError\nclass Invalid(LocalizedError):\n    pass\n", encoding="utf-8"
    )
    problems, _ = check.code_problems(tmp_path)
    assert [str(p) for p in problems] == [
        "central/planted.py:4: t('pub.safety.ratio') leaves out ratio",
        "central/planted.py:5: Invalid('enrollment.not_foundd'): no such message in the catalogue",
    ]


def test_add_appends_one_message_to_every_language(locale_copy):
    check.add("demo.greeting", {"zh_CN": "你好，{name}", "en": "Hello, {name}"}, locale_copy)
    assert check.catalogue_problems(locale_copy) == []
    en = (locale_copy / "en" / "LC_MESSAGES" / "schoolgate.po").read_text(encoding="utf-8")
    assert en.endswith('\n\nmsgid "demo.greeting"\nmsgstr "Hello, {name}"\n')
    with pytest.raises(SystemExit, match="same placeholders"):
        check.add("demo.other", {"zh_CN": "你好，{name}", "en": "Hello, {nmae}"}, locale_copy)
    with pytest.raises(SystemExit, match="already in the catalogue"):
        check.add("demo.greeting", {"zh_CN": "你好", "en": "Hello"}, locale_copy)
