"""The product's one message catalogue: every string a person reads, in zh_CN (default) and en.

The messages live in gettext catalogues, ``i18n/locale/<locale>/LC_MESSAGES/schoolgate.po``, one per
language; each ``msgid`` is a key (``enrollment.not_found``, ``checked_in``), its ``msgstr`` the text
with ``{placeholders}``. Babel reads the ``.po`` files on first use and keeps them in memory, so no
compiled ``.mo`` is built or committed: the ``.po`` is the only copy and cannot drift from a binary
beside it, and two branches that each add a message merge as text.

Every package may import this one (it imports none of theirs), so hardware, kiosk, gateway, central
and the command line share one ``t()``. ``python -m i18n.check`` (``scripts/i18n-check``) checks the
catalogues and the keys used in the code.
"""

from __future__ import annotations

import os
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from babel.core import negotiate_locale
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

DEFAULT_LOCALE = "zh_CN"
LOCALES = ("zh_CN", "en")
DOMAIN = "schoolgate"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"


class MessageError(LookupError):
    """A key not in the catalogue, or a placeholder the caller did not give: a bug, never shown blank."""


@dataclass(frozen=True)
class Msg:
    """A message as a parameter of another, rendered in the outer message's language.

    ``Invalid("group.forbidden", what=Msg("group.kind.new_lessons"))`` reads 上新课 in zh_CN and
    "new lessons" in en, where a plain string would be one language in both.
    """

    key: str
    params: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Items:
    """A list as a parameter, joined with the language's own separator (``list.separator``: 、 or ", ").

    ``Invalid("group.tutoring", words=Items(("讲新课", "补课")))`` reads 讲新课、补课 in zh_CN and
    "讲新课, 补课" in en.
    """

    items: tuple[str, ...]


def po_path(locale: str) -> Path:
    return LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(locale: str) -> Catalog:
    """Babel's view of one ``.po`` file: the messages with their flags (fuzzy) and comments."""
    with po_path(locale).open("rb") as fp:
        return read_po(fp, locale=locale, domain=DOMAIN)


@cache
def _texts(locale: str) -> dict[str, str]:
    # A fuzzy or empty translation is no translation: the check refuses it, and t() falls back.
    return {m.id: m.string for m in read_catalog(locale) if m.id and m.string and not m.fuzzy}


def has(key: str) -> bool:
    """Whether the catalogue holds ``key`` (in the default language, which every key has)."""
    return key in _texts(DEFAULT_LOCALE)


def placeholders(text: str) -> set[str]:
    """The names a text formats: ``{name}``, ``{name!r}``, ``{when:%H:%M}`` all give ``name``."""
    names = set()
    for _, name, _, _ in string.Formatter().parse(text):
        if name is not None:
            names.add(name.split(".")[0].split("[")[0])
    return names


class _Given(dict):
    def __init__(self, key: str, locale: str, params: Mapping[str, object]) -> None:
        super().__init__(params)
        self.key, self.locale = key, locale

    def __missing__(self, name: str) -> object:
        raise MessageError(f"message {self.key!r} ({self.locale}) needs {{{name}}}, which was not given")


def _value(value: object, locale: str) -> object:
    if value is None:
        return ""
    if isinstance(value, Msg):
        return t(value.key, locale, **value.params)
    if isinstance(value, Items):
        return t("list.separator", locale).join(str(item) for item in value.items)
    return value


def t(key: str, locale: str = DEFAULT_LOCALE, /, **params: object) -> str:
    """The text of ``key`` in ``locale`` with ``params`` filled in.

    Args:
        key: the message's key (its ``msgid``).
        locale: ``zh_CN`` or ``en``; any other value reads zh_CN.
        **params: values for the text's placeholders; extra ones are ignored, ``None`` shows as
            nothing, a ``Msg`` is rendered in the same language, ``Items`` joined with its separator.

    Raises:
        MessageError: the key is not in the catalogue, or a placeholder was not given.
    """
    texts = _texts(locale) if locale in LOCALES else {}
    text = texts.get(key) or _texts(DEFAULT_LOCALE).get(key)
    if text is None:
        raise MessageError(f"no message {key!r} in the catalogue ({po_path(DEFAULT_LOCALE).relative_to(LOCALE_DIR.parent.parent)})")
    values = {
        name: _value(value, locale) for name, value in params.items()
    }
    try:
        return text.format_map(_Given(key, locale, values))
    except (IndexError, ValueError) as exc:  # "{0}" or a broken brace: the catalogue's fault, still loud
        raise MessageError(f"message {key!r} ({locale}) cannot be formatted: {exc}") from exc


class LocalizedError(Exception):
    """An error whose message comes from the catalogue: ``str()`` is the zh_CN text, ``.text(locale)`` any."""

    def __init__(self, key: str, **params: object) -> None:
        self.key = key
        self.params = params
        super().__init__(t(key, DEFAULT_LOCALE, **params))

    def text(self, locale: str = DEFAULT_LOCALE) -> str:
        return t(self.key, locale, **self.params)


class LocalizedValueError(LocalizedError, ValueError):
    """Bad input to a parser (a card or phone number, a file), with its message from the catalogue.

    Still a ``ValueError``, and ``str()`` stays the English text the parsers always gave (logs, the
    kiosk's console); ``.text(locale)`` and ``Msg(e.key, e.params)`` put it in a reader's language.
    """

    def __str__(self) -> str:
        return self.text("en")


def _supported(tag: str) -> str | None:
    """The supported locale for one language tag (``en-GB`` → en, ``zh-Hans-CN`` → zh_CN), or None."""
    tag = tag.strip().replace("_", "-")
    if not tag or tag == "*":
        return None
    # Babel: exact match first (case-insensitive), then its aliases (zh → zh_CN), then the language part.
    found = negotiate_locale([tag], [loc.replace("_", "-") for loc in LOCALES], sep="-")
    if found:
        return found.replace("-", "_")
    language = tag.split("-")[0].lower()
    return next((loc for loc in LOCALES if loc.split("_")[0].lower() == language), None)


def parse_accept_language(header: str | None) -> list[str]:
    """The tags of an ``Accept-Language`` header, most wanted first (RFC 9110 §12.5.4).

    ``q=`` weights order them (equal weights keep the header's order); ``q=0`` means "not this one"
    and drops the tag; a malformed weight counts as 1 rather than dropping the tag.
    """
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate((header or "").split(",")):
        tag, *options = [piece.strip() for piece in part.split(";")]
        if not tag:
            continue
        q = 1.0
        for option in options:
            name, _, value = option.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 1.0
        if q > 0:
            weighted.append((-q, index, tag))
    return [tag for _, _, tag in sorted(weighted)]


def negotiate(requested: str | None = None, accept_language: str | None = None) -> str:
    """The locale asked for (``?lang=``, ``--lang``), else the best supported one in Accept-Language
    by its ``q=`` weights, else zh_CN."""
    for tag in [requested or "", *parse_accept_language(accept_language)]:
        if found := _supported(tag):
            return found
    return DEFAULT_LOCALE


def locale_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The command line's language from the POSIX variables: the first set of ``LC_ALL``,
    ``LC_MESSAGES``, ``LANG`` decides (``en_US.UTF-8`` → en); unset, ``C``/``POSIX`` or a language
    we lack give zh_CN, the product's language (a bare system's ``C.UTF-8`` says nothing of the reader)."""
    env = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name, "")
        if value:
            tag = value.split(".")[0].split("@")[0]
            if tag in ("C", "POSIX"):
                return DEFAULT_LOCALE
            return _supported(tag) or DEFAULT_LOCALE
    return DEFAULT_LOCALE


def pick_locale(requested: str | None, accept_language: str | None = None) -> str:
    """Kept for central's callers: the same as ``negotiate``."""
    return negotiate(requested, accept_language)


__all__ = (
    "DEFAULT_LOCALE", "LOCALES", "Items", "LocalizedError", "MessageError", "Msg", "has", "locale_from_env",
    "negotiate", "parse_accept_language", "pick_locale", "placeholders", "t",
)
