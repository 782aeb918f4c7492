"""`watch` through the real bot: alerts at once from any fetch (a `refresh`, a change through the
bot, a digest), pruning, and the Home tab's list of the channels watching each app or getting its
digest, with who set each up and when.

The real bot on loopback (`BotUnderTest`), signed commands, clicks and `app_home_opened` events,
the Desk emulator, FakeSlack (recording `views.publish`) and a real database (or one that does not
answer). DESK_WATCH_INTERVAL is an hour and no ticker runs, so no poll can be what posts an alert
here: only the fetches' lists handed to the watch service.
"""

from __future__ import annotations

import json
import math
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.desk.client import REFRESH_COALESCE
from bot.management.messages import CONFIRM_ACTION
from bot.sandbox.desk_emulator import DeskEmulator
from bot.sandbox.slack_emulator import SANDBOX_CHANNEL_ID, SANDBOX_USER_ID, FakeSlack, sign, slash_command_body
from bot.watch.messages import MAX_CHANNELS, SUBSCRIPTIONS_UNREADABLE
from bot.watch.service import EVENT_TYPE, KEEP_EVENTS, KEEP_POLLS, Poll
from bot.watch.store import WatchStore
from tests.support.databases import migrated
from tests.support.environment import BOTH_DATABASES, make_settings
from tests.support.slack_harness import (
    BOT_TOKEN,
    SIGNING_SECRET,
    BotUnderTest,
    click,
    command_as,
    event_body,
    slack_env,
)
from tests.support.tiers import e2e_fixture

ADMIN = SANDBOX_USER_ID
SOON = 5.0  # seconds: "at once", against an interval of an hour
VIEWER = "U0VIEWER"


@e2e_fixture
def desk() -> Iterator[DeskEmulator]:
    with DeskEmulator(languages=[("en", 1), ("ja", 0)], rate_limit=100) as emulator:
        yield emulator


@e2e_fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=BOT_TOKEN) as fake:
        yield fake


def start(desk: DeskEmulator, slack: FakeSlack, database_url: str, **extra: str) -> BotUnderTest:
    env = {"DATABASE_URL": database_url, "DESK_WATCH_INTERVAL": "3600", "DESK_ADMINS": ADMIN, **extra}
    return BotUnderTest(make_settings(desk, **slack_env(slack, **env)), slack, desk)


@pytest.fixture
def bot(desk: DeskEmulator, slack: FakeSlack, database_url: str) -> Iterator[BotUnderTest]:
    served = start(desk, slack, database_url)
    yield served
    served.close()


def alerts(slack: FakeSlack, channel: str = SANDBOX_CHANNEL_ID) -> list[dict[str, Any]]:
    return [m for m in slack.messages(channel) if (m.get("metadata") or {}).get("event_type") == EVENT_TYPE]


def watch_here(bot: BotUnderTest) -> None:
    """This channel watches, and a first list is known (a plain command fetched it)."""
    assert "will get an alert" in command_as(bot, ADMIN, "watch")["text"]
    command_as(bot, ADMIN, "")
    assert bot.deps.watch is not None and bot.deps.watch.wait_noticed()
    assert bot.deps.watch.store.get_state("default").list_json is not None
    assert alerts(bot.slack) == []  # the first list seen is no change
    time.sleep(REFRESH_COALESCE)  # a refresh from now on fetches anew


def test_a_refresh_that_sees_a_new_list_alerts_at_once(bot: BotUnderTest, desk: DeskEmulator) -> None:
    watch_here(bot)
    desk.set_languages([("en", 1), ("ja", 0), ("vi", 0)])
    calls = len(desk.calls_of("robot_get_language_list"))
    started = time.monotonic()
    reply = bot.command("refresh")
    assert reply.status == 200 and reply.elapsed < 3.0
    assert "Vietnamese" in str(bot.reply(reply.name))
    assert bot.slack.wait_for(lambda fake: len(alerts(fake)) == 1, timeout=SOON)
    assert time.monotonic() - started < SOON
    assert "Added Vietnamese (`vi`)" in alerts(bot.slack)[0]["text"]
    assert len(desk.calls_of("robot_get_language_list")) == calls + 1  # watch used the refresh's list
    bot.command("refresh")  # the same list again: no second alert
    assert bot.deps.watch is not None and bot.deps.watch.wait_noticed()
    assert len(alerts(bot.slack)) == 1


def test_an_add_through_the_bot_alerts_at_once_naming_who(bot: BotUnderTest, desk: DeskEmulator) -> None:
    watch_here(bot)
    confirmation = command_as(bot, ADMIN, "add vi")
    assert "was added" in str(bot.reply(click(bot, confirmation, CONFIRM_ACTION).name, timeout=10))
    assert bot.slack.wait_for(lambda fake: len(alerts(fake)) == 1, timeout=SOON)
    assert f"Added Vietnamese (`vi`) by <@{ADMIN}>" in alerts(bot.slack)[0]["text"]


def test_a_digest_that_sees_a_new_list_alerts_at_once(desk: DeskEmulator, slack: FakeSlack, database_url: str) -> None:
    bot = start(desk, slack, database_url, DESK_CACHE_TTL="0")  # the digest fetches, not the cache
    try:
        watch_here(bot)
        desk.set_languages([("en", 1)])
        assert bot.deps.digests is not None
        assert bot.deps.digests.post_now("C0DIGESTS").outcome.value == "posted"
        assert bot.slack.wait_for(lambda fake: len(alerts(fake)) == 1, timeout=SOON)
        assert "Removed Japanese (`ja`)" in alerts(bot.slack)[0]["text"]
        assert alerts(bot.slack, "C0DIGESTS") == []  # the digest's channel does not watch
    finally:
        bot.close()


def test_a_flip_back_before_any_fetch_and_a_failed_refresh_alert_nothing(bot: BotUnderTest, desk: DeskEmulator) -> None:
    from bot.sandbox.desk_emulator import Fault

    watch_here(bot)
    desk.set_languages([("en", 1), ("ja", 0), ("vi", 0)])
    desk.set_languages([("en", 1), ("ja", 0)])
    bot.reply(bot.command("refresh").name)
    desk.set_languages([("en", 1)])
    desk.inject(Fault(http_status=502), times=10)  # the refresh serves the last good list, stale
    bot.reply(bot.command("refresh").name, timeout=10)
    assert bot.deps.watch is not None and bot.deps.watch.wait_noticed()
    assert alerts(bot.slack) == []


@BOTH_DATABASES
def test_two_processes_seeing_the_same_new_list_alert_once(
    desk: DeskEmulator, slack: FakeSlack, database_url: str
) -> None:
    one, two = start(desk, slack, database_url), start(desk, slack, database_url)
    try:
        watch_here(one)
        command_as(two, ADMIN, "")  # the second process holds the same first list
        time.sleep(REFRESH_COALESCE)
        desk.set_languages([("en", 1), ("vi", 0)])
        barrier = threading.Barrier(2)

        def refresh(bot: BotUnderTest) -> None:
            barrier.wait()
            bot.reply(bot.command("refresh").name)

        threads = [threading.Thread(target=refresh, args=(bot,)) for bot in (one, two)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        for bot in (one, two):
            assert bot.deps.watch is not None and bot.deps.watch.wait_noticed()
        assert len(desk.calls_of("robot_get_language_list")) >= 4  # each process fetched it itself
        assert slack.wait_for(lambda fake: len(alerts(fake)) >= 1, timeout=SOON)
        time.sleep(1.0)  # a second alert would have had the time to arrive
        (alert,) = alerts(slack)
        assert "Added Vietnamese" in alert["text"] and "Removed Japanese" in alert["text"]
    finally:
        one.close()
        two.close()


def test_an_older_copy_than_the_last_list_seen_changes_nothing(bot: BotUnderTest, desk: DeskEmulator) -> None:
    watch_here(bot)
    watch = bot.deps.watch
    assert watch is not None
    older = bot.deps.default_app.client.fetch()  # fetched now, but compared after a newer one
    desk.set_languages([("en", 1), ("vi", 0)])
    bot.reply(bot.command("refresh").name)
    assert watch.wait_noticed() and bot.slack.wait_for(lambda fake: len(alerts(fake)) == 1, timeout=SOON)
    app = watch.app()
    assert watch.observe(app, older, time.time()) == (Poll.OLDER, False)
    assert len(alerts(bot.slack)) == 1


def test_old_events_alerts_and_poll_slots_are_pruned_by_the_hourly_tick(
    bot: BotUnderTest, desk: DeskEmulator
) -> None:
    watch_here(bot)
    watch = bot.deps.watch
    assert watch is not None
    desk.set_languages([("en", 1), ("vi", 0)])
    bot.reply(bot.command("refresh").name)
    assert watch.wait_noticed() and bot.slack.wait_for(lambda fake: len(alerts(fake)) == 1, timeout=SOON)
    store, now = watch.store, time.time()
    store.claim_poll("default", 1, "old", now - KEEP_POLLS - 60)
    assert store.events_since(0) and store.all_alerts() and store.poll_count("default") == 1
    watch.tick(now)  # a poll now: its slot stays, the day-old one goes; the change is not old yet
    assert len(store.events_since(0)) == 1 and len(store.all_alerts()) == 1 and store.poll_count("default") == 1
    # a slot's start, so that `within` below falls in the same slot (a boundary crossed would claim a new one)
    later = math.ceil((now + KEEP_EVENTS + 60) / watch.interval) * watch.interval
    within = later + min(60.0, watch.interval / 2)
    watch.tick(later)  # past the hour and past a week: the change and its alert go; the old slot too
    assert store.events_since(0) == [] and store.all_alerts() == []
    assert store.poll_count("default") == 1  # the slot polled just now stays
    store.claim_poll("default", 2, "old", later - KEEP_POLLS - 60)
    watch.tick(within)  # the same slot, within the hour: not pruned again
    assert store.poll_count("default") == 2
    assert len(alerts(bot.slack)) == 1


def test_a_poll_does_not_take_a_cached_list_older_than_half_an_interval(bot: BotUnderTest, desk: DeskEmulator) -> None:
    watch_here(bot)  # the list is in the cache (DESK_CACHE_TTL is 300 s) and was compared
    watch = bot.deps.watch
    assert watch is not None
    desk.set_languages([("en", 1), ("vi", 0)])
    calls = len(desk.calls_of("robot_get_language_list"))
    watch.interval = 2 * REFRESH_COALESCE  # the cached list is now older than half an interval
    assert watch.tick().polls["default"] is Poll.CHANGED
    assert len(desk.calls_of("robot_get_language_list")) == calls + 1
    assert bot.slack.wait_for(lambda fake: len(alerts(fake)) == 1, timeout=SOON)


HOSTILE_TAGS = ("<!channel>", "<https://evil.example|click>", "<@U0EVIL>", "<#C0EVIL>")
LIVE_TOKEN = re.compile(r"<(?:!channel|!here|!everyone|https?:|@U0EVIL|#C0EVIL)[^<>]*>")


def test_hostile_tags_from_desk_reach_the_watching_channel_escaped(bot: BotUnderTest, desk: DeskEmulator) -> None:
    watch_here(bot)
    desk.set_languages([("en", 1), ("ja", 0), *[(tag, 0) for tag in HOSTILE_TAGS]])
    watch = bot.deps.watch
    assert watch is not None
    watch.interval = 2 * REFRESH_COALESCE  # the ticker polls Desk itself: the cached list is too old
    assert watch.tick().polls["default"] is Poll.CHANGED
    assert bot.slack.wait_for(lambda fake: len(alerts(fake)) == 1, timeout=SOON)
    posted = alerts(bot.slack)[0]
    shown = json.dumps([posted["text"], posted["blocks"]], ensure_ascii=False)
    assert LIVE_TOKEN.findall(shown) == []
    assert "&lt;!channel&gt;" in posted["text"] and "&lt;!channel&gt;" in json.dumps(posted["blocks"])
    assert "&lt;https://evil.example|click&gt;" in posted["text"]


# --- the Home tab --------------------------------------------------------------------------------


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


def test_a_cli_add_alerts_watching_channels_before_the_command_exits(
    desk: DeskEmulator, slack: FakeSlack, tmp_path: Path
) -> None:
    """`python -m bot add vi --yes` with a bot token: the watching channel hears of it, naming the
    CLI's user, before the process ends (not at the next poll, an hour away)."""
    from tests.support.environment import desk_env
    from tests.support.served import clean_env

    database = f"sqlite:///{tmp_path / 'cli.db'}"
    env = clean_env(**desk_env(desk, **slack_env(slack, DATABASE_URL=database, DESK_WATCH_INTERVAL="3600")))
    WatchStore(migrated(database)).put_watch(SANDBOX_CHANNEL_ID, "default", ADMIN, time.time())

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bot", *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=60, check=False)

    assert cli("watch", "--due").returncode == 0  # the list before the change is known
    assert alerts(slack) == []
    done = cli("add", "vi", "--yes")
    assert done.returncode == 0, done.stderr
    assert "Vietnamese (vi) was added." in done.stdout and "still on its way" not in done.stderr
    posted = alerts(slack)
    assert len(posted) == 1 and "Added Vietnamese (`vi`) by cli:" in posted[0]["text"]
