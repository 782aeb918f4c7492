"""Tests for `bot.slack.blocks.digest_message`: the list as the command shows it, plus what changed."""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.models.blocks import Block

from bot.desk.changes import Changes, diff
from bot.desk.errors import transport_error
from bot.desk.models import Language, LanguageList
from bot.digests.messages import digest_message
from bot.slack.blocks import MAX_BLOCKS, TEXT_LIMIT, RenderContext, languages_message, slack_len

CTX = RenderContext(sdkappid=1400000001, region="Singapore")


def make(*pairs: tuple[str, bool]) -> LanguageList:
    return LanguageList.build([Language.of(tag, is_default) for tag, is_default in pairs], 1700000000.0)


BEFORE = make(("en", True), ("ja", False), ("vi", False))
AFTER = make(("en", False), ("ja", True), ("fr", False))


def texts(message: dict[str, Any]) -> str:
    return json.dumps(message["blocks"], ensure_ascii=False)


def test_first_digest_says_so_and_lists_everything() -> None:
    message = digest_message(BEFORE, diff(None, BEFORE), CTX)
    body = texts(message)
    assert "First digest" in body
    assert "English" in body and "Japanese" in body and "Vietnamese" in body
    assert "first digest" in message["text"]


def test_no_changes() -> None:
    message = digest_message(BEFORE, diff(BEFORE, BEFORE), CTX)
    assert "*No changes* since the previous digest" in texts(message)
    assert message["text"].startswith("Desk languages digest (no changes)")


def test_added_removed_and_default_changed_are_all_named() -> None:
    message = digest_message(AFTER, diff(BEFORE, AFTER), CTX)
    changes = message["blocks"][1]["text"]["text"]
    assert "*Added:* French (`fr`)" in changes
    assert "*Removed:* Vietnamese (`vi`)" in changes
    assert "*Default changed:* English (`en`) → Japanese (`ja`)" in changes
    assert "1 added, 1 removed, default changed" in message["text"]


def test_default_removed_entirely_shows_none() -> None:
    message = digest_message(make(("ja", False)), diff(make(("en", True)), make(("ja", False))), CTX)
    assert "English (`en`) → _none_" in texts(message)


def test_the_list_part_matches_the_command_without_buttons() -> None:
    listing = languages_message(AFTER, CTX, buttons=False)
    message = digest_message(AFTER, diff(BEFORE, AFTER), CTX)
    assert message["blocks"][0]["type"] == "header"
    assert message["blocks"][2:] == listing["blocks"][1:]
    assert not any(block["type"] == "actions" for block in message["blocks"])


def test_a_stale_list_carries_the_warning() -> None:
    stale = BEFORE.as_stale(transport_error("read-timeout", "no answer in 2 s"))
    message = digest_message(stale, diff(BEFORE, stale), CTX)
    assert ":warning:" in texts(message)
    assert "read-timeout" in texts(message)


def test_outside_text_is_escaped() -> None:
    hostile = make(("<!channel>", True))
    message = digest_message(hostile, diff(make(("en", True)), hostile), CTX)
    assert "<!channel>" not in texts(message) and "<!channel>" not in message["text"]
    assert "&lt;!channel&gt;" in texts(message)


def test_huge_changes_stay_inside_slack_limits() -> None:
    many = make(*[(f"x-tag{i:03d}", i == 0) for i in range(400)])
    message = digest_message(many, diff(make(("en", True)), many), CTX)
    assert len(message["blocks"]) <= MAX_BLOCKS
    for block in message["blocks"]:
        if block["type"] == "section":
            assert 0 < slack_len(block["text"]["text"]) <= TEXT_LIMIT
        Block.parse(block).validate_json()  # slack_sdk's own checks
    assert "…and 380 more" in message["blocks"][1]["text"]["text"]
    assert message["text"].strip()


def test_changes_is_a_plain_value() -> None:
    assert Changes().none and not Changes(first=True).none


def test_with_several_apps_the_digest_names_its_app() -> None:
    labelled = RenderContext(sdkappid=1400000002, region="Frankfurt", label="Staging (Frankfurt)")
    message = digest_message(AFTER, diff(BEFORE, AFTER), labelled, named=True)
    assert message["blocks"][0]["text"]["text"] == "Desk chatbot languages: digest — Staging (Frankfurt)"
    assert message["text"].startswith("Desk languages digest — Staging (Frankfurt) (1 added")
    unlabelled = digest_message(AFTER, diff(BEFORE, AFTER), CTX, named=True)
    assert unlabelled["blocks"][0]["text"]["text"] == "Desk chatbot languages: digest — SDKAppID 1400000001"
    # One app (the composition root gives it no label): the header is as before.
    single = digest_message(AFTER, diff(BEFORE, AFTER), CTX)
    assert single["blocks"][0]["text"]["text"] == "Desk chatbot languages: digest"


def test_a_long_or_hostile_label_stays_inside_the_header() -> None:
    hostile = RenderContext(sdkappid=1, region="x", label="<!channel> " + "x" * 300)
    message = digest_message(AFTER, diff(BEFORE, AFTER), hostile, named=True)
    Block.parse(message["blocks"][0]).validate_json()  # a header holds 150 characters
    assert "<!channel>" not in texts(message) and "<!channel>" not in message["text"]


def test_a_digest_carries_one_readiness_line_naming_the_flagged_languages() -> None:
    from bot.desk.readiness import FaqCount, ReadinessReport, RobotSettings

    config = RobotSettings(welcome_card_enabled=True, welcome_card_questions=("Hi",), fallback_message="Sorry",
                         to_agent_enabled=True)
    languages = list(AFTER.languages)
    report = ReadinessReport.build(
        languages,
        [FaqCount(0 if lang.tag == "ja" else 10, 10) for lang in languages],
        [config for _ in languages],
        fetched_at=AFTER.fetched_at,
    )
    message = digest_message(AFTER, diff(BEFORE, AFTER), CTX, readiness=report)
    lines = [b for b in message["blocks"] if "*Readiness:*" in json.dumps(b)]
    assert len(lines) == 1 and "Japanese has no FAQ questions" in json.dumps(lines[0])
    assert "*Readiness:*" not in json.dumps(digest_message(AFTER, diff(BEFORE, AFTER), CTX)["blocks"])
