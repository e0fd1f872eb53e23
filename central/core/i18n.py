"""Central's door to the product's message catalogue (``i18n``): every string a person reads on a
page or in an error, zh_CN by default, en.

The messages themselves are in ``i18n/locale/*/LC_MESSAGES/schoolgate.po``; README "Messages and
languages" says how to add one.
"""

from __future__ import annotations

from i18n import DEFAULT_LOCALE, LOCALES, Items, LocalizedError, LocalizedValueError, Msg, has, negotiate, pick_locale, t

__all__ = ["DEFAULT_LOCALE", "LOCALES", "Items", "LocalizedError", "LocalizedValueError", "Msg", "has", "negotiate", "pick_locale", "t"]
