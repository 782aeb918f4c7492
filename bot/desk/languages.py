"""The languages Desk's chatbot supports, and how many an app may have (docs/desk-api.md §3.4, §8).

This is the one place that lists them: the error catalogue's hint for -50051, the emulator's
check of `robot_add_language` and `suggest_tag()` all read `SUPPORTED_TAGS`.

Tags coming back from Desk are never normalised (docs/desk-api.md §3.3). `suggest_tag()` is for
what a person types: it maps a near-miss (`zh-CN`, `EN`, `tl`, the old `in`) or a language's
name (`vietnamese`, `Tagalog`, `日本語`) to the supported tag it most likely means.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where a person's text is read: not on a serving process's common path
    import langcodes

# As Desk's add-language page lists them (Chinese page, 2025-12-05), in its order.
SUPPORTED_TAGS: tuple[str, ...] = ("id", "zh", "zh-TW", "en", "vi", "ja", "fil")

# The advanced edition (高级版) allows 5 languages by default, the default language included.
ADVANCED_EDITION_LANGUAGE_LIMIT = 5

_BY_LOWER = {tag.lower(): tag for tag in SUPPORTED_TAGS}
_TRADITIONAL_TERRITORIES = frozenset({"TW", "HK", "MO"})
_MAX_INPUT = 64  # longer text is not a language name


def _supported_for(language: langcodes.Language) -> str | None:
    """The supported tag for a parsed language, or None: Chinese by script or region, else by language."""
    base = language.language
    if base in ("zh", "cmn"):
        if language.script == "Hant" or (language.script is None and language.territory in _TRADITIONAL_TERRITORIES):
            return "zh-TW"
        return "zh"
    return _BY_LOWER.get(str(base).lower()) if base else None


@lru_cache(maxsize=1)
def _names() -> dict[str, str]:
    """Every supported tag's English name and autonym, lower-cased: "chinese (taiwan)" -> "zh-TW"."""
    import langcodes

    names: dict[str, str] = {}
    for tag in SUPPORTED_TAGS:
        language = langcodes.Language.get(tag)
        for name in (language.display_name(), language.autonym()):
            names.setdefault(str(name).casefold(), tag)
    return names


@lru_cache(maxsize=1024)
def suggest_tag(text: str) -> str | None:
    """The supported tag `text` most likely means, or None.

    A supported tag in any case gives itself (`EN` -> `en`, `zh-tw` -> `zh-TW`); other tags map by
    language, script and region (`zh-CN`, `zh-Hans` -> `zh`; `zh-Hant`, `zh-HK` -> `zh-TW`;
    `en-US` -> `en`; `tl` -> `fil`; `in` -> `id`); names in English or in the language itself map
    too (`tagalog` -> `fil`, `Japanese` -> `ja`, `Chinese (Taiwan)` -> `zh-TW`).
    """
    cleaned = text.strip().replace("_", "-")
    if not cleaned or len(cleaned) > _MAX_INPUT:
        return None
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in cleaned):
        # No tag or name has a control character, and langcodes' name trie crashes on NUL
        # (marisa_trie: "SystemError: Negative size passed to PyBytes_FromStringAndSize").
        return None
    import langcodes

    folded = cleaned.casefold()
    if folded in _BY_LOWER:
        return _BY_LOWER[folded]
    if folded in _names():
        return _names()[folded]
    try:
        if langcodes.tag_is_valid(cleaned):
            found = _supported_for(langcodes.Language.get(cleaned))
            if found is not None:
                return found
        # Names in many languages ("vietnamese", "tiếng việt", "Traditional Chinese"); normalised
        # again because find() returns the name's own tag ("tl" for Tagalog).
        named = langcodes.find(cleaned)
        return _supported_for(langcodes.Language.get(str(named)))
    except (ValueError, LookupError):  # LanguageTagError is a ValueError
        return None
