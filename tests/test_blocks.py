"""Tests for bot/slack/blocks.py: content of each message, Slack's limits, escaping, and the memo."""

from __future__ import annotations

import html
import json
import re
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.desk.errors import desk_error, transport_error
from bot.desk.models import Language, LanguageList
from bot.slack.blocks import (
    MAX_BLOCKS,
    REFRESH_ACTION,
    SHARE_ACTION,
    TEXT_LIMIT,
    Message,
    RenderContext,
    default_message,
    error_message,
    help_message,
    languages_message,
    notice_message,
    slack_len,
    unknown_option_message,
)

CTX = RenderContext(sdkappid=1400000001, region="Singapore")
FETCHED = 1700000000.75  # 2023-11-14 22:13:20 UTC
DATE = "<!date^1700000000^{date_short_pretty} at {time}|2023-11-14 22:13 UTC>"


def make(pairs: list[tuple[str, bool]], fetched_at: float = FETCHED) -> LanguageList:
    return LanguageList.build([Language.of(tag, is_default) for tag, is_default in pairs], fetched_at)


SEVEN = make(
    [("en", True), ("zh", False), ("zh-TW", False), ("ja", False), ("fil", False), ("ko", False),
     ("id", False)]
)


def text_nodes(message: Message) -> list[dict[str, Any]]:
    """Every text object in the blocks (section, context, header, buttons), in order."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("mrkdwn", "plain_text"):
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(message["blocks"])
    return found


def text_objects(message: Message) -> list[str]:
    return [node["text"] for node in text_nodes(message)]


def all_text(message: Message) -> str:
    return "\n".join([message["text"], *text_objects(message)])


def language_lines(message: Message) -> list[str]:
    return [line for text in text_objects(message) for line in text.split("\n") if line.startswith("• ")]


def assert_within_limits(message: Message) -> None:
    assert set(message) == {"text", "blocks"}
    assert message["text"].strip()
    assert 1 <= len(message["blocks"]) <= MAX_BLOCKS
    for text in text_objects(message):
        assert text.strip(), "empty text object"
        assert slack_len(text) <= TEXT_LIMIT
    # the only "<" anywhere is Slack's date syntax we wrote ourselves: nothing from outside
    for text in [message["text"], *text_objects(message)]:
        assert all(part.startswith("!date^") for part in text.split("<")[1:]), text
    json.dumps(message)  # plain data only


# --- languages_message ---------------------------------------------------------------------


def test_lists_every_language_with_name_and_tag_and_marks_only_the_default() -> None:
    message = languages_message(SEVEN, CTX)
    lines = language_lines(message)
    assert len(lines) == 7
    assert lines[0] == "• English (`en`) :star: *default*"
    assert "• Chinese (Taiwan) (`zh-TW`)" in lines
    assert [line for line in lines if ":star:" in line or "default" in line] == [lines[0]]
    assert message["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Desk chatbot languages", "emoji": True},
    }
    assert_within_limits(message)


def test_count_line_singular_plural_and_no_default() -> None:
    assert "*7 languages*, default: English (`en`)" in all_text(languages_message(SEVEN, CTX))
    one = all_text(languages_message(make([("ja", False)]), CTX))
    assert "*1 language*, no default language set" in one
    empty = languages_message(make([]), CTX)
    assert "no languages configured" in all_text(empty)
    assert language_lines(empty) == []
    assert_within_limits(empty)


def test_several_defaults_are_all_marked_and_counted() -> None:
    message = languages_message(make([("en", True), ("de", True), ("fr", False)]), CTX)
    assert [":star:" in line for line in language_lines(message)] == [True, True, False]
    assert "*3 languages*, default: English (`en`) (2 languages are marked default)" in all_text(message)


def test_empty_tag_default_renders_with_a_no_tag_marker_and_no_empty_backticks() -> None:
    message = languages_message(make([("", True), ("en", False)]), CTX)
    lines = language_lines(message)
    assert lines[0] == "• Default language (no tag) :star: *default*"
    assert lines[1] == "• English (`en`)"
    assert "default: Default language (no tag)" in all_text(message)
    assert "``" not in all_text(message)
    assert "Default language (no tag) (default)" in message["text"]


def test_blank_tag_that_is_not_empty_is_not_shown_as_empty_code() -> None:
    message = languages_message(make([("  ", True)]), CTX)
    assert "`  `" not in all_text(message)
    assert "_(blank)_" in language_lines(message)[0]


def test_context_line_has_sdkappid_region_slack_date_and_freshness() -> None:
    fresh = text_objects(languages_message(SEVEN, CTX))
    assert f"SDKAppID 1400000001 · Singapore · fetched {DATE} · just fetched" in fresh
    cached = replace(SEVEN, from_cache=True)
    assert any(text.endswith("· from cache") for text in text_objects(languages_message(cached, CTX)))


def test_date_syntax_falls_back_when_the_time_is_nonsense() -> None:
    message = languages_message(make([("en", True)], fetched_at=float("nan")), CTX)
    assert "fetched an unknown time" in all_text(message)
    assert_within_limits(message)


def test_buttons_carry_the_action_ids_and_can_be_left_out() -> None:
    actions = languages_message(SEVEN, CTX)["blocks"][-1]
    assert actions["type"] == "actions"
    assert [button["action_id"] for button in actions["elements"]] == [REFRESH_ACTION, SHARE_ACTION]
    assert [button["text"]["text"] for button in actions["elements"]] == [
        ":arrows_counterclockwise: Refresh",
        ":mega: Share in channel",
    ]
    without = languages_message(SEVEN, CTX, buttons=False)
    assert all(block["type"] != "actions" for block in without["blocks"])


def test_two_hundred_languages_stay_within_slack_limits_and_say_how_many_more() -> None:
    tags = [f"x-{index:03d}" for index in range(200)]
    lst = make([(tag, index == 150) for index, tag in enumerate(tags)])
    message = languages_message(lst, CTX)
    assert_within_limits(message)
    lines = language_lines(message)
    sections = [block for block in message["blocks"] if block["type"] == "section"]
    assert len(lines) < 200
    assert len(sections) < len(lines)  # several languages per section
    more = [text for text in text_objects(message) if text.startswith("…and ")]
    assert more == [f"…and {200 - len(lines)} more"]
    assert lines[0] == "• Unrecognised tag (`x-000`)"  # an unknown tag is shown once, not twice
    # the default sits past the cut, so the count line names it
    assert "*200 languages*, default: Unrecognised tag (`x-150`)" in all_text(message)
    assert "… and " in message["text"] and len(message["text"]) <= 400


def test_long_odd_tags_pack_into_sections_without_overflowing() -> None:
    lst = make([("&<>" * 300 + str(index), False) for index in range(200)])
    message = languages_message(lst, CTX)
    assert_within_limits(message)
    assert sum(block["type"] == "section" for block in message["blocks"]) > 10


def test_tags_are_escaped_so_they_cannot_ping_anyone() -> None:
    lst = make([("<!channel>", True), ("<@U123|x>", False), ("a&b", False), ("`x`", False)])
    message = languages_message(lst, CTX)
    text = all_text(message)
    assert "<!channel>" not in text and "<@U123" not in text
    assert "`&lt;!channel&gt;`" in text
    assert "a&amp;b" in text
    assert "`ˋxˋ`" in text  # a backtick in a tag cannot end the code span early
    mrkdwn = [node for node in text_nodes(message) if node["type"] == "mrkdwn"]
    assert mrkdwn and all(node.get("verbatim") is True for node in mrkdwn)
    assert_within_limits(message)


def test_stale_list_warns_with_the_code_meaning_and_hint() -> None:
    err = transport_error("read-timeout")
    message = languages_message(SEVEN.as_stale(err), CTX)
    warning = message["blocks"][1]["text"]["text"]
    assert warning.startswith(f":warning: *Desk could not be reached*, showing the list from {DATE}.")
    assert "`read-timeout`" in warning and err.meaning in warning
    assert err.hint in warning
    assert message["text"].startswith("Desk chatbot languages (stale list from 2023-11-14 22:13 UTC)")
    assert "from cache" in all_text(message)
    assert len(language_lines(message)) == 7


def test_stale_list_after_a_desk_error_says_so_and_shows_tencents_text() -> None:
    err = desk_error(-50040, "desk <b>off</b>")
    warning = languages_message(SEVEN.as_stale(err), CTX)["blocks"][1]["text"]["text"]
    assert "Desk answered with an error" in warning
    assert "`-50040`" in warning and err.hint in warning
    assert "desk &lt;b&gt;off&lt;/b&gt;" in warning


def test_memo_hands_out_independent_copies_and_tells_errors_apart() -> None:
    first = languages_message(SEVEN, CTX)
    first["response_type"] = "in_channel"
    first["blocks"][0]["text"]["text"] = "changed"
    first["blocks"].pop()
    again = languages_message(SEVEN, CTX)
    assert "response_type" not in again
    assert again["blocks"][0]["text"]["text"] == "Desk chatbot languages"
    assert again["blocks"][-1]["type"] == "actions"
    # LanguageList equality ignores `error`: the memo must still show the right one
    timeout = all_text(languages_message(SEVEN.as_stale(transport_error("read-timeout")), CTX))
    refused = all_text(languages_message(SEVEN.as_stale(transport_error("connection-failed")), CTX))
    assert "read-timeout" in timeout and "connection-failed" in refused
    assert "read-timeout" not in refused


# --- default_message ---------------------------------------------------------------------


def test_default_message_shows_only_the_default() -> None:
    message = default_message(SEVEN, CTX)
    assert message["blocks"][0]["text"]["text"] == (
        ":star: The Desk chatbot's default language is *English (`en`)*."
    )
    assert message["text"] == "Desk chatbot default language: English (en)"
    assert "Chinese" not in all_text(message)
    assert_within_limits(message)


def test_default_message_without_default_or_languages_and_when_stale() -> None:
    assert "no default language set (1 language configured)" in all_text(
        default_message(make([("ja", False)]), CTX)
    )
    assert "no languages configured" in all_text(default_message(make([]), CTX))
    stale = default_message(make([("", True)]).as_stale(transport_error("read-timeout")), CTX)
    assert stale["blocks"][0]["text"]["text"].startswith(":warning:")
    assert "Default language (no tag)" in all_text(stale) and "``" not in all_text(stale)


# --- error_message -------------------------------------------------------------------------


def test_error_message_has_code_meaning_tencents_text_and_hint() -> None:
    err = desk_error(-50040, "robot <!here> not open", "req-42")
    message = error_message(err, CTX)
    text = all_text(message)
    assert message["blocks"][0]["text"]["text"].startswith(":x: *Couldn't fetch the Desk languages.*")
    assert "*Error* `-50040`: Desk is not enabled" in text
    assert "*Tencent says:* robot &lt;!here&gt; not open" in text
    assert f"*What to do:* {err.hint}" in text
    assert "request ID `req-42`" in text
    assert "Traceback" not in text and "DeskError(" not in text
    assert message["text"].startswith("Couldn't fetch the Desk languages: error -50040, Desk is not enabled.")
    assert_within_limits(message)


def test_transport_error_message_and_custom_action() -> None:
    err = transport_error("read-timeout")
    message = error_message(err, CTX, action="refresh the list")
    text = all_text(message)
    assert "Couldn't refresh the list" in text
    assert "`read-timeout`" in text and err.meaning in text and err.hint in text
    assert "Tencent says" not in text  # no ErrorInfo: no empty line for it
    assert "Traceback" not in text
    assert_within_limits(message)


# --- help, unknown option, notice ----------------------------------------------------------


def test_help_lists_every_subcommand_with_an_example() -> None:
    message = help_message()
    text = all_text(message)
    for usage in (
        "`/desk-languages` –",
        "`/desk-languages share` –",
        "`/desk-languages refresh` –",
        "`/desk-languages default` –",
        "`/desk-languages help` –",
        "`/desk-languages digest daily 09:00 [Area/City]` –",
        "`/desk-languages digest weekdays 09:00 [tz]` –",
        "`/desk-languages digest weekly mon 09:00 [tz]` –",
        "`/desk-languages digest` –",
        "`/desk-languages digest off` –",
    ):
        assert usage in text
    assert "Example: `/desk-languages digest weekdays 09:00 Europe/Berlin`" in text
    assert "/desk-langs share" in all_text(help_message("/desk-langs"))
    assert_within_limits(message)


def test_unknown_option_is_shortened_cleaned_escaped_and_suggests() -> None:
    message = unknown_option_message("shaer\x07\x1b[31m <!channel> " + "x" * 100, "share")
    head = message["blocks"][0]["text"]["text"]
    shown = re.search(r"Unknown option `([^`]*)`", head)
    assert shown is not None
    assert len(html.unescape(shown.group(1))) <= 40 and shown.group(1).endswith("…")
    assert "\x07" not in head and "\x1b" not in head
    assert "<!channel>" not in all_text(message) and "&lt;!channel&gt;" in head
    assert head.endswith("Did you mean `share`?")
    assert "`/desk-languages digest off` –" in all_text(message)
    assert message["text"].startswith("Unknown option `shaer")
    assert_within_limits(message)


def test_unknown_option_without_suggestion() -> None:
    message = unknown_option_message("frobnicate", None)
    assert "Did you mean" not in all_text(message)
    assert "Unknown option `frobnicate`." in all_text(message)
    assert "Unknown option _(blank)_." in all_text(unknown_option_message("\x00 \t", None))


def test_notice_message_is_one_escaped_section() -> None:
    message = notice_message("Fetching… <!here>")
    assert message == {
        "text": "Fetching… &lt;!here&gt;",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "Fetching… &lt;!here&gt;", "verbatim": True}}
        ],
    }
    assert_within_limits(notice_message(""))
    assert_within_limits(notice_message("&" * 5000))


def test_every_message_has_fallback_text() -> None:
    stale = SEVEN.as_stale(transport_error("read-timeout"))
    for message in (
        languages_message(SEVEN, CTX),
        languages_message(stale, CTX, buttons=False),
        languages_message(make([]), CTX),
        default_message(SEVEN, CTX),
        default_message(make([]), CTX),
        error_message(desk_error(-50040), CTX),
        help_message(),
        unknown_option_message("x", "share"),
        notice_message("Fetching…"),
    ):
        assert message["text"].strip()
        assert_within_limits(message)


# --- properties ------------------------------------------------------------------------------

TAGS = st.one_of(
    st.sampled_from(["", "en", "zh-TW", "<!channel>", "`", "&amp;", "  ", "\u202e", "😀" * 40]),
    st.text(max_size=300),
)


@settings(max_examples=150, deadline=None)
@given(
    pairs=st.lists(st.tuples(TAGS, st.booleans()), max_size=250),
    stale=st.booleans(),
    buttons=st.booleans(),
    region=st.text(max_size=200),
)
def test_any_list_renders_within_limits(
    pairs: list[tuple[str, bool]], stale: bool, buttons: bool, region: str
) -> None:
    lst = make(pairs)
    if stale:
        lst = lst.as_stale(desk_error(70001, "x" * 3000))
    ctx = RenderContext(sdkappid=1400000001, region=region)
    message = languages_message(lst, ctx, buttons=buttons)
    assert_within_limits(message)
    lines = language_lines(message)
    more = [text for text in text_objects(message) if text.startswith("…and ")]
    assert more == ([f"…and {len(pairs) - len(lines)} more"] if len(lines) < len(pairs) else [])
    assert sum(":star: *default*" in line for line in lines) == sum(
        is_default for _, is_default in pairs[: len(lines)]
    )
    assert_within_limits(default_message(lst, ctx))


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=500), suggestion=st.one_of(st.none(), st.text(max_size=50)), info=st.text())
def test_any_user_text_or_error_info_renders_within_limits(
    text: str, suggestion: str | None, info: str
) -> None:
    assert_within_limits(unknown_option_message(text, suggestion))
    assert_within_limits(notice_message(text))
    assert_within_limits(error_message(desk_error(-14, info, info[:40] or None), CTX, action=text))
