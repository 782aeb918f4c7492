"""The Home tab lists, per app, the channels watching it and those with its digest, with who set
each up and when: the real bot on loopback, `app_home_opened` signed as Slack signs it, FakeSlack
recording `views.publish`, a real database (or one that does not answer)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from bot.desk.sandbox import DeskEmulator
from bot.slack_sandbox import FakeSlack, sign, slash_command_body
from bot.watch.messages import MAX_CHANNELS, SUBSCRIPTIONS_UNREADABLE
from tests.support.environment import make_settings
from tests.support.slack_harness import BOT_TOKEN, SIGNING_SECRET, BotUnderTest, slack_env
from tests.test_slack_app import event_body

VIEWER = "U0VIEWER"


@pytest.fixture
def desk() -> Iterator[DeskEmulator]:
    with DeskEmulator(languages=[("en", 1), ("ja", 0)], rate_limit=100) as emulator:
        yield emulator


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=BOT_TOKEN) as fake:
        yield fake


def start(desk: DeskEmulator, slack: FakeSlack, database_url: str) -> BotUnderTest:
    return BotUnderTest(make_settings(desk, **slack_env(slack, DATABASE_URL=database_url)), slack, desk)


def command(bot: BotUnderTest, text: str, channel: str, user: str) -> dict[str, Any]:
    name = bot.new_name("cmd")
    reply = bot.send(slash_command_body(text, response_url=bot.slack.response_url(name), channel_id=channel,
                                        user_id=user), name)
    assert reply.status == 200
    return reply.ack or bot.reply(name)


def open_home(bot: BotUnderTest) -> str:
    """Open the Home tab; the published view's blocks as JSON text."""
    published = len(bot.slack.calls("views.publish"))
    body = event_body({"type": "app_home_opened", "user": VIEWER, "channel": "D0VIEWER", "tab": "home"})
    response = bot.post(body, {**sign(SIGNING_SECRET, body), "Content-Type": "application/json"})
    assert response.status_code == 200
    assert bot.slack.wait_for(lambda fake: len(fake.calls("views.publish")) > published, timeout=10)
    view = bot.slack.calls("views.publish")[-1].body["view"]
    assert view["type"] == "home" and len(view["blocks"]) <= 100
    return json.dumps(view["blocks"], ensure_ascii=False)


def test_the_home_tab_names_the_watching_and_digest_channels_with_who_and_when(
    desk: DeskEmulator, slack: FakeSlack, database_url: str
) -> None:
    bot = start(desk, slack, database_url)
    try:
        assert "No channel watches this app" in open_home(bot)
        command(bot, "watch", "C0WATCHES", "U0ALICE")
        command(bot, "digest daily 09:00 UTC", "C0DIGESTS", "U0BOB")
        shown = open_home(bot)
        assert "English" in shown  # the list is still there
        assert "*Watching:* <#C0WATCHES> (set up by <@U0ALICE>, <!date^" in shown
        assert "*Digests:* <#C0DIGESTS> daily 09:00 UTC (set up by <@U0BOB>, <!date^" in shown
        for number in range(MAX_CHANNELS + 2):
            command(bot, "watch", f"C0MANY{number:02d}", "U0CAROL")
        shown = open_home(bot)
        assert "…and 3 more" in shown and "<#C0MANY08>" in shown and "<#C0MANY09>" not in shown
    finally:
        bot.close()


def test_with_the_database_down_the_home_tab_still_shows_the_lists(desk: DeskEmulator, slack: FakeSlack) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    bot = start(desk, slack, f"postgresql+psycopg://bot:pw@127.0.0.1:{port}/bot?connect_timeout=2")
    try:
        shown = open_home(bot)
        assert "English" in shown and "Japanese" in shown
        assert json.dumps(SUBSCRIPTIONS_UNREADABLE, ensure_ascii=False)[1:-1] in shown
        assert "Traceback" not in shown and "psycopg" not in shown and "pw" not in shown
    finally:
        bot.close()
