"""The `/desk-languages` grammar on its own: text in, `ParsedCommand` out, no Slack and no Desk."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.grammar import MAX_INPUT, OPTIONS, Action, clean, parse_command


@pytest.mark.parametrize(
    ("text", "action"),
    [
        (None, Action.LIST),
        ("", Action.LIST),
        ("   ", Action.LIST),
        ("share", Action.SHARE),
        ("  SHARE  ", Action.SHARE),
        ("Refresh", Action.REFRESH),
        ("default", Action.DEFAULT),
        ("help", Action.HELP),
        ("digest", Action.DIGEST),
    ],
)
def test_each_option_is_recognised_case_and_space_insensitively(text: str | None, action: Action) -> None:
    assert parse_command(text).action is action


def test_digest_keeps_its_arguments_cleaned() -> None:
    parsed = parse_command("digest   weekdays\t09:00  Europe/Berlin")
    assert parsed.action is Action.DIGEST
    assert parsed.args == "weekdays 09:00 Europe/Berlin"


def test_a_near_miss_suggests_the_option() -> None:
    parsed = parse_command("refesh")
    assert (parsed.action, parsed.suggestion, parsed.raw) == (Action.UNKNOWN, "refresh", "refesh")


def test_an_option_with_trailing_words_is_unknown_and_names_the_option() -> None:
    parsed = parse_command("share please")
    assert (parsed.action, parsed.suggestion) == (Action.UNKNOWN, "share")


def test_something_typed_but_nothing_printable_is_not_the_bare_command() -> None:
    assert parse_command("\u200b\u202e").action is Action.UNKNOWN


def test_far_off_text_has_no_suggestion() -> None:
    assert parse_command("xyzzy").suggestion is None


def test_clean_drops_controls_folds_space_and_caps_length() -> None:
    assert clean("a\x00b\n\nc\u202e") == "ab c"
    assert len(clean("x" * (MAX_INPUT * 3))) == MAX_INPUT


@given(st.text(max_size=2000))
def test_any_text_parses_and_unknown_input_gets_a_valid_suggestion(text: str) -> None:
    parsed = parse_command(text)
    assert parsed.action in Action
    assert len(parsed.raw) <= MAX_INPUT
    assert parsed.suggestion is None or parsed.suggestion in OPTIONS
