"""`/desk-languages` end to end over real HTTP: every grammar case, both buttons, the home tab,
Desk errors, a Desk hang, a stale list, answers from a fresh cache inside the ack, and 50
concurrent commands each answered exactly once.

The production WSGI app runs on a loopback port (`LoopbackServer`); each request is signed
as Slack signs it; replies are read where Slack would get them (the ack body, or the
`response_url` catcher of `FakeSlack`); the Desk emulator answers, or misbehaves, behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from bot.desk.client import REFRESH_COALESCE
from bot.sandbox.desk_emulator import DeskEmulator, Fault
from bot.sandbox.slack_emulator import SANDBOX_USER_ID, sign
from bot.slack.blocks import MAX_BLOCKS, REFRESH_ACTION, SHARE_ACTION
from tests.support.slack_harness import (
    ACK_LIMIT,
    SIGNING_SECRET,
    BotUnderTest,
    action_ids,
    as_json,
    event_body,
    home_tab_click,
    running_bot,
    strings,
    texts,
)

LIST_SETTLE = 0.2  # seconds to wait before concluding that no (further) reply is coming


@pytest.fixture
def bot(emulator: DeskEmulator) -> Iterator[BotUnderTest]:
    yield from running_bot(emulator)


def assert_language_list(message: dict[str, Any], buttons: tuple[str, ...] = (REFRESH_ACTION, SHARE_ACTION)) -> None:
    shown = texts(message)
    assert "Desk chatbot languages" in shown
    assert "English (`en`) :star: *default*" in shown
    for name, tag in (("Japanese", "ja"), ("Vietnamese", "vi"), ("Filipino", "fil")):
        assert f"{name} (`{tag}`)" in shown
    assert "5 languages" in shown
    assert action_ids(message) == list(buttons)
    assert message["text"]  # the notification fallback


def assert_usage(message: dict[str, Any] | None) -> None:
    shown = texts(message)
    for option in ("share", "refresh", "default", "help"):
        assert f"`/desk-languages {option}`" in shown
    assert "Example:" in shown


def assert_replies(bot: BotUnderTest, name: str, count: int) -> None:
    """After a pause, exactly `count` posts reached `response_url(name)`."""
    time.sleep(LIST_SETTLE)
    assert len(bot.slack.responses(name)) == count


# --- the grammar ---------------------------------------------------------------------------


def test_bare_command_acks_at_once_then_answers_the_caller_only(bot: BotUnderTest) -> None:
    reply = bot.command("")
    assert reply.status == 200
    assert reply.ack is None  # cold cache: a silent ack, the list follows
    assert reply.elapsed < 1.0
    message = bot.reply(reply.name)
    assert message["response_type"] == "ephemeral"
    assert message["replace_original"] is False  # a command has no original message to replace
    assert_language_list(message)
    assert "just fetched" in texts(message)
    assert len(bot.desk.calls) == 1
    assert_replies(bot, reply.name, 1)  # exactly one answer


@pytest.mark.parametrize("text", ["share", "  SHARE  ", "Share\t"])
def test_share_posts_the_list_in_the_channel(bot: BotUnderTest, text: str) -> None:
    reply = bot.command(text)
    assert (reply.status, reply.ack) == (200, None)
    message = bot.reply(reply.name)
    assert message["response_type"] == "in_channel"
    assert_language_list(message)


def test_refresh_bypasses_the_cache(bot: BotUnderTest) -> None:
    bot.warm()
    bot.desk.set_languages([("en", 0), ("de", 1)])
    cached = bot.command("")
    assert "Japanese" in texts(cached.ack)  # the cache still holds the old list
    assert len(bot.desk.calls) == 1
    time.sleep(REFRESH_COALESCE + 0.05)  # a refresh may reuse a list fetched within this window

    reply = bot.command("refresh")
    assert (reply.status, reply.ack) == (200, None)  # never answered from the cache in the ack
    message = bot.reply(reply.name)
    assert len(bot.desk.calls) == 2
    shown = texts(message)
    assert "German (`de`) :star: *default*" in shown
    assert "Japanese" not in shown
    assert "just fetched" in shown
    assert message["response_type"] == "ephemeral"
    # ...and the refreshed list is what the cache now serves.
    assert "German" in texts(bot.command("").ack)


def test_default_shows_only_the_default_language(bot: BotUnderTest) -> None:
    reply = bot.command("default")
    message = bot.reply(reply.name)
    shown = texts(message)
    assert "default language is *English (`en`)*" in shown
    assert "Japanese" not in shown
    assert message["response_type"] == "ephemeral"


@pytest.mark.parametrize("text", ["help", "HELP", "  help "])
def test_help_is_answered_in_the_ack_without_calling_desk(bot: BotUnderTest, text: str) -> None:
    reply = bot.command(text)
    assert reply.status == 200
    assert_usage(reply.ack)
    assert reply.ack is not None and reply.ack["text"]
    assert bot.desk.calls == []
    assert_replies(bot, reply.name, 0)


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [("shar", "share"), ("refesh", "refresh"), ("defualt", "default"), ("hepl", "help"), ("share now", "share")],
)
def test_a_near_miss_gets_did_you_mean_and_the_usage(bot: BotUnderTest, text: str, suggestion: str) -> None:
    reply = bot.command(text)
    assert reply.status == 200
    shown = texts(reply.ack)
    assert "Unknown option" in shown
    assert f"Did you mean `{suggestion}`?" in shown
    assert_usage(reply.ack)
    assert bot.desk.calls == []
    assert_replies(bot, reply.name, 0)


@pytest.mark.parametrize(
    "text",
    [
        "x" * 5000,  # overlong
        "share " + "y" * 3000,
        "日本語で表示して",  # unicode
        "🚀" * 400,
        "ｓｈａｒｅ",  # fullwidth letters are not the option
        "<!channel> <@U123> &amp; *bold*",  # mrkdwn that must not ping or format
        "\x1b[31mred\x1b[0m",  # control characters
        "\x00\x07\x08",  # nothing but control characters
        "\u202eerahs",  # a bidi override
        "\ud7ff\ufeff\ufffd",
    ],
    ids=["overlong", "overlong-option", "cjk", "emoji", "fullwidth", "mrkdwn", "ansi", "only-controls", "bidi", "odd"],
)
def test_strange_input_gets_the_unknown_option_reply_never_an_error(bot: BotUnderTest, text: str) -> None:
    reply = bot.command(text)
    assert reply.status == 200
    assert reply.ack is not None
    shown = texts(reply.ack)
    assert "Unknown option" in shown
    assert_usage(reply.ack)
    assert "<!channel>" not in as_json(reply.ack)
    assert "<@U123>" not in as_json(reply.ack)
    assert bot.desk.calls == []
    assert_replies(bot, reply.name, 0)


# --- a fresh cache answers in the ack ----------------------------------------------------------


def test_a_fresh_cache_answers_inside_the_ack(bot: BotUnderTest) -> None:
    bot.warm()
    listed, shared, default = bot.command(""), bot.command("share"), bot.command("default")
    for reply in (listed, shared, default):
        assert reply.status == 200
        assert reply.answer["blocks"]
    assert_language_list(listed.answer)
    assert "from cache" in texts(listed.answer)
    assert listed.answer["response_type"] == "ephemeral"
    assert shared.answer["response_type"] == "in_channel"
    assert "default language is *English" in texts(default.answer)
    assert len(bot.desk.calls) == 1
    time.sleep(LIST_SETTLE)
    for reply in (listed, shared, default):
        assert bot.slack.responses(reply.name) == []  # one round trip: nothing follows


# --- the buttons ----------------------------------------------------------------------------------


def test_refresh_button_re_renders_the_message_in_place(bot: BotUnderTest) -> None:
    shown = bot.warm()
    bot.desk.set_languages([("ko", 1)])
    time.sleep(REFRESH_COALESCE + 0.05)

    click = bot.click(REFRESH_ACTION, message=None)  # a click on the ephemeral reply
    assert (click.status, click.ack) == (200, None)
    assert click.elapsed < 1.0
    message = bot.reply(click.name)
    assert message["replace_original"] is True
    assert "Korean (`ko`) :star: *default*" in texts(message)
    assert "English" not in texts(message)
    assert len(bot.desk.calls) == 2
    assert action_ids(message) == action_ids(shown)  # still has both buttons
    assert_replies(bot, click.name, 1)


def test_share_button_posts_the_list_in_the_channel(bot: BotUnderTest) -> None:
    shown = bot.warm()
    shown["ts"] = "1700000000.000100"
    click = bot.click(SHARE_ACTION, message=shown)
    assert (click.status, click.ack) == (200, None)
    message = bot.reply(click.name)
    assert message["response_type"] == "in_channel"
    assert message["replace_original"] is False  # the caller's own copy stays
    assert_language_list(message)
    assert f"Shared by <@{SANDBOX_USER_ID}>" in texts(message)
    assert len(message["blocks"]) <= MAX_BLOCKS
    assert len(bot.desk.calls) == 1  # served from the cache
    assert_replies(bot, click.name, 1)


def test_a_long_list_stays_within_block_kit_limits_in_every_reply(bot: BotUnderTest) -> None:
    tags = ["en", *(f"x-tag{i:03d}" for i in range(199))]
    bot.desk.set_languages([(tag, int(tag == "en")) for tag in tags])
    listed = bot.reply(bot.command("").name)
    shared = bot.reply(bot.click(SHARE_ACTION, message=listed).name)
    for message in (listed, shared):
        assert len(message["blocks"]) <= MAX_BLOCKS
        assert "200 languages" in texts(message)
        assert "…and 100 more" in texts(message)
        assert max(len(text) for text in strings(message)) <= 3000  # section text; fields would be 2000
    assert f"Shared by <@{SANDBOX_USER_ID}>" in texts(shared)


# --- the home tab -----------------------------------------------------------------------------------


def test_opening_the_home_tab_publishes_the_list(bot: BotUnderTest) -> None:
    body = event_body({"type": "app_home_opened", "user": SANDBOX_USER_ID, "channel": "D0SANDBOX", "tab": "home"})
    headers = {**sign(SIGNING_SECRET, body), "Content-Type": "application/json"}
    response = bot.post(body, headers)
    assert response.status_code == 200
    assert bot.slack.wait_for(lambda fake: bool(fake.calls("views.publish")))
    (call,) = bot.slack.calls("views.publish")
    assert call.status == 200
    assert call.headers["Authorization"] == f"Bearer {bot.slack.token}"
    assert call.body["user_id"] == SANDBOX_USER_ID
    view = call.body["view"]
    assert view["type"] == "home"
    # No Share button: the home tab has no channel, and a click there has no response_url.
    assert_language_list({"text": "home", "blocks": view["blocks"]}, buttons=(REFRESH_ACTION,))
    assert_usage({"blocks": view["blocks"]})

    # The Refresh button on the home tab re-publishes the view.
    refresh = home_tab_click(REFRESH_ACTION, view)
    assert bot.post(refresh, sign(SIGNING_SECRET, refresh)).status_code == 200
    assert bot.slack.wait_for(lambda fake: len(fake.calls("views.publish")) == 2)


def test_a_share_click_on_an_older_home_tab_is_ignored_quietly(
    bot: BotUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    click = home_tab_click(SHARE_ACTION, {})
    assert bot.post(click, sign(SIGNING_SECRET, click)).status_code == 200
    assert bot.slack.wait_for(lambda _: "no channel to share to" in caplog.text, timeout=3)
    assert [record for record in caplog.records if record.levelno >= logging.ERROR] == []
    assert [call.method for call in bot.slack.calls()] == ["auth.test"]


# --- Desk failures ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "code", "meaning", "hint"),
    [
        (Fault(code=-50040), "-50040", "Desk is not enabled", "Enable Desk in the Cloud Contact Center console"),
        (Fault(code=70001), "70001", "UserSig expired", ""),
        (Fault(http_status=502), "http-gateway", "", ""),
    ],
    ids=["desk-not-enabled", "usersig-expired", "gateway"],
)
def test_a_desk_error_shows_the_code_meaning_and_hint(
    bot: BotUnderTest, fault: Fault, code: str, meaning: str, hint: str
) -> None:
    bot.desk.inject(fault, times=-1)
    reply = bot.command("")
    assert (reply.status, reply.ack) == (200, None)
    message = bot.reply(reply.name)
    shown = texts(message)
    assert f"`{code}`" in shown
    assert meaning in shown
    assert hint in shown
    assert "*What to do:*" in shown
    assert "Couldn't fetch the Desk languages" in shown
    assert code in message["text"]
    for leak in ("Traceback", "DeskError(", "Exception", 'File "', "usersig="):
        assert leak not in as_json(message)
    assert message["response_type"] == "ephemeral"


def test_a_failed_share_tells_only_the_caller(bot: BotUnderTest) -> None:
    bot.desk.inject(Fault(code=-50040), times=-1)
    command = bot.reply(bot.command("share").name)
    click = bot.reply(bot.click(SHARE_ACTION).name)
    for message in (command, click):
        assert message["response_type"] == "ephemeral"  # the channel never sees the error
        assert "`-50040`" in texts(message)
        assert "Shared by" not in texts(message)


@pytest.fixture
def slow_desk_bot(emulator: DeskEmulator) -> Iterator[BotUnderTest]:
    yield from running_bot(emulator, DESK_TIMEOUT="1")


def test_a_desk_hang_does_not_delay_the_ack_and_ends_in_a_timeout_reply(slow_desk_bot: BotUnderTest) -> None:
    bot = slow_desk_bot
    bot.desk.inject(Fault(hang=5), times=-1)
    started = time.monotonic()
    reply = bot.command("")
    assert (reply.status, reply.ack) == (200, None)
    assert reply.elapsed < 1.0, f"ack took {reply.elapsed:.2f} s"
    message = bot.reply(reply.name, timeout=4)
    answered = time.monotonic() - started
    assert answered < 3.0  # DESK_TIMEOUT bounds the wait, not the 5 s hang
    shown = texts(message)
    assert "`read-timeout`" in shown
    assert "Desk did not answer in time" in shown
    assert "raise DESK_TIMEOUT" in shown
    assert "Traceback" not in shown


@pytest.fixture
def uncached_bot(emulator: DeskEmulator) -> Iterator[BotUnderTest]:
    yield from running_bot(emulator, DESK_CACHE_TTL="0")


def test_a_stale_list_is_served_with_a_visible_warning(uncached_bot: BotUnderTest) -> None:
    bot = uncached_bot
    bot.warm()
    bot.desk.inject(Fault(code=-50040), times=-1)
    reply = bot.command("")
    assert reply.ack is None  # nothing fresh to answer from in the ack
    message = bot.reply(reply.name)
    shown = texts(message)
    assert ":warning: *Desk answered with an error*, showing the list from" in shown
    assert "`-50040`" in shown
    assert "Enable Desk in the Cloud Contact Center console" in shown
    assert_language_list(message)  # the last good list is still there
    assert "stale" in message["text"]
    assert len(bot.desk.calls) == 2

    # The default option carries the same warning.
    default = bot.reply(bot.command("default").name)
    assert ":warning:" in texts(default)
    assert "English" in texts(default)


# --- load ------------------------------------------------------------------------------------------


@pytest.fixture
def patient_bot(emulator: DeskEmulator) -> Iterator[BotUnderTest]:
    yield from running_bot(emulator, DESK_TIMEOUT="3")


def test_fifty_concurrent_commands_are_each_answered_exactly_once(patient_bot: BotUnderTest) -> None:
    bot = patient_bot
    bot.desk.inject(Fault(hang=0.8))  # one slow fetch: most commands find the cache cold
    names = [f"burst-{i}" for i in range(50)]
    with ThreadPoolExecutor(max_workers=50) as pool:
        replies = list(pool.map(lambda name: bot.command("share" if name[-1] in "05" else "", name=name), names))

    assert [reply.status for reply in replies] == [200] * 50
    slowest = max(reply.elapsed for reply in replies)
    assert slowest < ACK_LIMIT, f"slowest ack {slowest:.2f} s"
    followed = [reply.name for reply in replies if reply.ack is None]
    assert followed, "the burst should have met a cold cache"
    assert bot.slack.wait_for(lambda fake: all(fake.responses(name) for name in followed), timeout=10)
    time.sleep(LIST_SETTLE)
    for reply in replies:
        posts = bot.slack.responses(reply.name)
        if reply.ack is None:
            assert len(posts) == 1, f"{reply.name}: {len(posts)} replies"
            message = posts[0].body
        else:
            assert posts == [], f"{reply.name} was answered in the ack and again"
            message = reply.ack
        assert_language_list(message)
        expected = "in_channel" if reply.name[-1] in "05" else "ephemeral"
        assert message["response_type"] == expected
    assert len(bot.desk.calls) == 1  # one Desk call for the whole burst
