"""The `/desk-languages` grammar on its own: text in, `ParsedCommand` out, no Slack and no Desk."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.slack.grammar import MAX_INPUT, OPTIONS, Action, clean, compare_pair, parse_command


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


# --- several apps: the app's name first ----------------------------------------------------------

APPS = ("prod", "staging", "eu")


@pytest.mark.parametrize(
    ("text", "action", "app"),
    [
        ("staging", Action.LIST, "staging"),
        ("STAGING", Action.LIST, "staging"),
        ("eu refresh", Action.REFRESH, "eu"),
        ("staging share", Action.SHARE, "staging"),
        ("prod default", Action.DEFAULT, "prod"),
        ("share", Action.SHARE, None),
        ("apps", Action.APPS, None),
        ("staging digest daily 09:00", Action.DIGEST, "staging"),
    ],
)
def test_the_app_name_comes_first(text: str, action: Action, app: str | None) -> None:
    parsed = parse_command(text, APPS)
    assert (parsed.action, parsed.app) == (action, app)


def test_a_misspelt_app_name_is_unknown_with_the_app_as_suggestion_never_the_default_list() -> None:
    parsed = parse_command("stagin", APPS)
    assert (parsed.action, parsed.suggestion, parsed.suggestion_is_app) == (Action.UNKNOWN, "staging", True)
    assert parse_command("stagin refresh", APPS).action is Action.UNKNOWN


def test_without_several_apps_no_word_is_an_app_name() -> None:
    parsed = parse_command("staging")
    assert (parsed.action, parsed.app, parsed.suggestion_is_app) == (Action.UNKNOWN, None, False)


def test_compare_takes_the_names_after_it_and_an_app_before_it() -> None:
    assert parse_command("compare prod eu", APPS).args == "prod eu"
    assert parse_command("staging compare", APPS).args == "staging"


@pytest.mark.parametrize(
    ("args", "apps", "expected"),
    [
        ("staging prod", APPS, ("staging", "prod")),
        ("staging", APPS, ("prod", "staging")),
        ("", ("prod", "staging"), ("prod", "staging")),
        ("", APPS, "more than two apps"),
        ("prod", APPS, "is the default app"),
        ("stagin", APPS, "Did you mean `staging`?"),
        ("prod prod", APPS, "two different apps"),
        ("", ("default",), "one Desk app"),
        ("a b c", APPS, "at most two"),
    ],
)
def test_compare_pair(args: str, apps: tuple[str, ...], expected: tuple[str, str] | str) -> None:
    got = compare_pair(args, apps)
    if isinstance(expected, tuple):
        assert got == expected
    else:
        assert isinstance(got, str) and expected in got
