"""The supported tags, the language limit, suggest_tag(), and the write APIs' catalogue entries."""

from __future__ import annotations

import langcodes
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.desk import language_names
from bot.desk.errors import CATALOGUE, RetryClass, desk_error
from bot.desk.language_names import NAMES
from bot.desk.languages import ADVANCED_EDITION_LANGUAGE_LIMIT, SUPPORTED_TAGS, suggest_tag
from bot.desk.models import language_name


def test_the_documented_tags_and_limit() -> None:
    assert SUPPORTED_TAGS == ("id", "zh", "zh-TW", "en", "vi", "ja", "fil")  # docs/desk-api.md §3.4
    assert ADVANCED_EDITION_LANGUAGE_LIMIT == 5


@pytest.mark.parametrize(
    ("typed", "tag"),
    [
        ("zh-CN", "zh"),
        ("zh-Hans", "zh"),
        ("zh-SG", "zh"),
        ("zh-Hant", "zh-TW"),
        ("zh-HK", "zh-TW"),
        ("zh_TW", "zh-TW"),
        ("zh-tw", "zh-TW"),
        ("tl", "fil"),
        ("tagalog", "fil"),
        ("Filipino", "fil"),
        ("vietnamese", "vi"),
        ("Tiếng Việt", "vi"),
        ("Japanese", "ja"),
        ("日本語", "ja"),
        ("EN", "en"),
        ("en-US", "en"),
        ("en-GB", "en"),
        ("in", "id"),  # the old code for Indonesian
        ("Bahasa Indonesia", "id"),
        ("Traditional Chinese", "zh-TW"),
        ("Chinese (Taiwan)", "zh-TW"),
        ("  ja  ", "ja"),
    ],
)
def test_near_misses_and_names_map_to_a_supported_tag(typed: str, tag: str) -> None:
    assert suggest_tag(typed) == tag


@pytest.mark.parametrize("tag", SUPPORTED_TAGS)
def test_a_supported_tag_suggests_itself(tag: str) -> None:
    assert suggest_tag(tag) == tag


@pytest.mark.parametrize("typed", ["", "   ", "de", "French", "klingon", "xx", "123", "zh-" * 40, "\x00𐀀", "en\x00"])
def test_nothing_close_suggests_nothing(typed: str) -> None:
    assert suggest_tag(typed) is None


@given(st.text(max_size=40))
def test_any_text_suggests_a_supported_tag_or_nothing(text: str) -> None:
    assert suggest_tag(text) in (*SUPPORTED_TAGS, None)


def test_language_names_still_work_for_supported_tags() -> None:
    assert [language_name(tag) for tag in SUPPORTED_TAGS] == [
        "Indonesian",
        "Chinese",
        "Chinese (Taiwan)",
        "English",
        "Vietnamese",
        "Japanese",
        "Filipino",
    ]


@pytest.mark.parametrize("code", [-50042, -50051, -50052, -50055, -50056])
def test_write_codes_are_permanent_with_a_hint(code: int) -> None:
    assert code in CATALOGUE
    assert desk_error(code).retry is RetryClass.PERMANENT


def test_each_write_code_says_what_to_do() -> None:
    assert "高级版" in desk_error(-50042).hint and "advanced edition" in desk_error(-50042).hint
    assert all(tag in desk_error(-50051).hint for tag in SUPPORTED_TAGS)
    assert "5 languages, the default language included" in desk_error(-50052).hint
    assert "default in the Desk console first" in desk_error(-50055).hint
    assert "knowledge base" in desk_error(-50056).hint and "first" in desk_error(-50056).hint


def test_the_kept_names_are_langcodes_names_for_every_supported_and_two_letter_tag() -> None:
    """bot/desk/language_names.py answers without langcodes' name tables; it must say what langcodes
    says (after a langcodes upgrade: `python -m bot.desk.language_names` writes it again)."""
    assert language_names.generated_names() == NAMES
    assert set(SUPPORTED_TAGS) <= set(NAMES) and len(NAMES) > 150


@pytest.mark.parametrize("tag", ["en-US", "zh-Hant", "yue", "EN"])
def test_a_tag_outside_the_kept_names_is_named_by_langcodes(tag: str) -> None:
    assert tag not in NAMES
    assert language_name(tag) == langcodes.Language.get(tag).display_name()
