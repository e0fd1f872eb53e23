"""Central's message catalogue: every string a person reads on a page or in an error (zh_CN default, en).

Each feature keeps its strings in one dict and merges it here with ``CATALOGUE.update(...)``, so two
features never edit the same lines. Keys are unique across features.
"""

from __future__ import annotations

DEFAULT_LOCALE = "zh_CN"
LOCALES = ("zh_CN", "en")

CATALOGUE: dict[str, dict[str, str]] = {}


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def pick_locale(requested: str | None, accept_language: str | None = None) -> str:
    """The locale asked for (``?lang=``), else the first supported one in Accept-Language, else zh_CN."""
    for wanted in [requested or "", *(part.split(";")[0].strip() for part in (accept_language or "").split(","))]:
        wanted = wanted.replace("-", "_")
        for locale in LOCALES:
            if wanted and (wanted.lower() == locale.lower() or wanted.split("_")[0].lower() == locale.split("_")[0].lower()):
                return locale
    return DEFAULT_LOCALE


def t(key: str, locale: str = DEFAULT_LOCALE, **params: object) -> str:
    entry = CATALOGUE[key]
    text = entry.get(locale) or entry[DEFAULT_LOCALE]
    return text.format_map(_Blank({k: "" if v is None else v for k, v in params.items()}))


class LocalizedError(Exception):
    """An error whose message comes from the catalogue: ``str()`` is the zh_CN text, ``.text(locale)`` any."""

    def __init__(self, key: str, **params: object) -> None:
        self.key = key
        self.params = params
        super().__init__(t(key, DEFAULT_LOCALE, **params))

    def text(self, locale: str = DEFAULT_LOCALE) -> str:
        return t(self.key, locale, **self.params)
