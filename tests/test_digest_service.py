"""The digest service end to end over loopback: FakeSlack, the Desk emulator, a real database.

Time is simulated with two dials, as in production code: `clock` is the schedule's
"now", `timer` the real seconds that claim leases are measured in.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.boot import build_desk_client, build_web_client
from bot.cli import build_parser, cmd_digest
from bot.config import ConfigError, Settings
from bot.database import connect
from bot.deps import DeskApp
from bot.digests.service import EVENT_TYPE, INVITE_HINT, DigestService, DigestSettings, Outcome
from bot.digests.store import DigestStore, PostState
from bot.digests.ticker import DigestTicker
from bot.sandbox.desk_emulator import DeskEmulator, Fault
from bot.sandbox.slack_emulator import FakeSlack
from bot.slack.blocks import RenderContext
from tests.support.clocks import Dial
from tests.support.environment import BOTH_DATABASES, make_settings
from tests.support.tiers import e2e_fixture

CHANNEL = "C0DIGEST"
APP = "default"  # the one app of a bot that serves one
LEASE = 600.0  # longer than the minutes the tests step through
MONDAY = datetime(2026, 3, 30, tzinfo=UTC)  # simulated dates lie in the past: Slack ts > period start


@dataclass
class Harness:
    fake: FakeSlack
    emu: DeskEmulator
    service: DigestService
    settings: Settings
    clock: Dial[datetime]
    timer: Dial[float]

    def at(self, day: int, hour: int, minute: int = 0) -> datetime:
        """Set the schedule clock to MONDAY + day at hour:minute UTC (and the lease timer along)."""
        self.clock.value = MONDAY + timedelta(days=day, hours=hour, minutes=minute)
        self.timer.value = max(self.timer.value, self.clock.value.timestamp())
        return self.clock.value

    def tick(self, day: int, hour: int, minute: int = 0) -> list[tuple[str, Outcome]]:
        report = self.service.tick(self.at(day, hour, minute))
        return [(r.period, r.outcome) for r in report.results]

    def command(self, args: str, user_tz: str | None = None, app: str = APP) -> dict[str, Any]:
        return self.service.handle_command(CHANNEL, app, args, user_tz)

    def posts(self, channel: str = CHANNEL) -> list[dict[str, Any]]:
        return self.fake.messages(channel)

    def periods(self, channel: str = CHANNEL) -> list[str]:
        return [m["metadata"]["event_payload"]["period"] for m in self.posts(channel)]


@e2e_fixture
def harness(database_url: str) -> Iterator[Harness]:
    clock = Dial(MONDAY)
    timer = Dial(MONDAY.timestamp())
    # Desk's 5 calls/s would only slow the tests down here (the client paces itself to it).
    with FakeSlack(clock=lambda: timer.value) as fake, DeskEmulator(rate_limit=1000) as emulator:
        emulator.set_languages([("en", 1), ("ja", 0)])
        settings = make_settings(
            emulator,
            DATABASE_URL=database_url,
            SLACK_BOT_TOKEN=fake.token,
            SLACK_API_URL=fake.api_url,
            DESK_CACHE_TTL=0,  # every digest asks Desk, so tests can change the list
            DIGEST_DEFAULT_TZ="UTC",
            DESK_RATE_LIMIT=1000,
        )
        service = digest_service(settings, [desk_app(APP, settings)], clock, timer)
        yield Harness(fake, emulator, service, settings, clock, timer)
        service.store.engine.dispose()


def desk_app(name: str, settings: Settings, label: str | None = None) -> DeskApp:
    """A Desk app as the bot builds one (bot.deps.DeskApp), its client on `settings`' emulator."""
    client = build_desk_client(settings)
    return DeskApp(name=name, client=client, render=RenderContext(client.sdkappid, "emulator", label))


def digest_service(settings: Settings, apps: list[DeskApp], clock: Dial, timer: Dial) -> DigestService:
    store = DigestStore(connect(settings.database_url.value), apps=[app.name for app in apps])
    digests = DigestSettings.of(settings)
    service = DigestService(store, apps, build_web_client(settings), digests, clock, timer=timer, lease=LEASE)
    return service


def blocks_text(message: dict[str, Any]) -> str:
    return json.dumps(message["blocks"], ensure_ascii=False)


# --- the command ----------------------------------------------------------------------------------


def test_subscribe_show_and_off(harness: Harness) -> None:
    harness.at(0, 6)  # 08:00 in Berlin
    reply = harness.command("weekdays 09:00 Europe/Berlin")
    assert "every weekday (Mon–Fri) at 09:00 (Europe/Berlin)" in blocks_text(reply)
    assert "<!date^1774854000^" in blocks_text(reply)  # Mon 30 Mar 2026 07:00 UTC = 09:00 CEST
    sub = harness.service.store.get_subscription(CHANNEL, APP)
    assert sub is not None and sub.schedule == "weekdays 09:00 Europe/Berlin"

    shown = harness.command("", user_tz="Asia/Tokyo")
    assert "Next digest" in blocks_text(shown)
    assert "Mon 30 Mar 2026 16:00 (Asia/Tokyo)" in shown["text"]  # fallback in the reader's zone

    stopped = harness.command("off")
    assert "Digest stopped" in stopped["text"]
    assert harness.service.store.get_subscription(CHANNEL, APP) is None
    assert "no Desk languages digest" in blocks_text(harness.command(""))
    assert "nothing to stop" in blocks_text(harness.command("OFF"))


def test_a_new_subscription_replaces_the_old_and_says_so(harness: Harness) -> None:
    harness.command("daily 09:00")
    reply = harness.command("weekly fri 16:00 America/New_York")
    assert "replaces the previous digest (`daily 09:00 UTC`)" in blocks_text(reply)
    assert "unchanged" in blocks_text(harness.command("weekly friday 16:00 america/new_york"))
    assert harness.service.store.get_subscription(CHANNEL, APP).schedule == "weekly fri 16:00 America/New_York"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        ("hourly", "`hourly` is not a schedule"),
        ("daily 25:00", "`25:00` is not a time"),
        ("weekly someday 09:00", "`someday` is not a day"),
        ("daily 09:00 Moon/Base", "`Moon/Base` is not a time zone"),
        ("daily 09:00 <!channel>", "`&lt;!channel&gt;` is not a time zone"),
    ],
)
def test_bad_schedules_store_nothing_and_show_valid_examples(harness: Harness, args: str, complaint: str) -> None:
    reply = harness.command(args)
    assert complaint in blocks_text(reply)
    assert "/desk-languages digest weekdays 09:00 Europe/Berlin" in blocks_text(reply)
    assert "<!channel>" not in blocks_text(reply)
    assert harness.service.store.get_subscription(CHANNEL, APP) is None


# --- posting ----------------------------------------------------------------------------------


@BOTH_DATABASES
def test_a_due_digest_is_posted_once_with_its_period(harness: Harness) -> None:
    harness.at(0, 7)
    harness.command("daily 09:00")
    assert harness.tick(0, 8, 59) == []
    assert harness.tick(0, 9, 0) == [("2026-03-30", Outcome.POSTED)]
    assert harness.tick(0, 9, 1) == [("2026-03-30", Outcome.DONE)]
    assert harness.tick(0, 12, 0) == [("2026-03-30", Outcome.DONE)]
    [message] = harness.posts()
    assert message["metadata"] == {"event_type": EVENT_TYPE, "event_payload": {"period": "2026-03-30", "app": APP}}
    assert message["blocks"][0]["text"]["text"] == "Desk chatbot languages: digest"  # one app: not named
    assert "First digest" in blocks_text(message)
    record = harness.service.store.get_post(CHANNEL, APP, "2026-03-30")
    assert record is not None and record.state is PostState.POSTED and record.ts == message["ts"]
    assert harness.service.store.get_snapshot(CHANNEL, APP) is not None
    assert "Last digest: posted" in blocks_text(harness.command(""))


def test_the_next_digest_says_what_changed(harness: Harness) -> None:
    harness.command("daily 09:00")
    harness.tick(0, 9)
    harness.tick(1, 9)
    harness.emu.set_languages([("en", 0), ("ja", 1), ("fr", 0)])
    harness.tick(2, 9)
    _first, second, third = harness.posts()
    assert "No changes" in blocks_text(second)
    assert "*Added:* French (`fr`)" in blocks_text(third)
    assert "*Default changed:* English (`en`) → Japanese (`ja`)" in blocks_text(third)
    assert harness.periods() == ["2026-03-30", "2026-03-31", "2026-04-01"]


def test_catch_up_within_the_grace_window_only(harness: Harness) -> None:
    harness.command("daily 09:00")
    assert harness.tick(0, 14, 59) == [("2026-03-30", Outcome.POSTED)]  # 5 h 59 late: catch up
    assert harness.tick(1, 15, 1) == []  # 6 h 1 late: missed, wait for tomorrow
    assert harness.periods() == ["2026-03-30"]


def test_a_new_subscription_does_not_post_for_a_time_already_past(harness: Harness) -> None:
    harness.at(0, 10)
    harness.command("daily 09:00")
    assert harness.tick(0, 10, 1) == []
    assert harness.tick(1, 9, 0) == [("2026-03-31", Outcome.POSTED)]


def test_weekly_and_weekday_schedules_post_once_per_period(harness: Harness) -> None:
    harness.command("weekly wed 09:00")
    harness.service.handle_command("C0WEEKDAYS", APP, "weekdays 09:00")
    for day in range(14):
        for hour in (9, 10):
            harness.tick(day, hour)
    assert harness.periods() == ["2026-W14", "2026-W15"]
    assert len(harness.periods("C0WEEKDAYS")) == 10


def test_desk_failing_with_no_list_posts_nothing_and_retries_next_tick(harness: Harness) -> None:
    harness.command("daily 09:00")
    harness.emu.inject(Fault(code=-50040))
    [(period, outcome)] = harness.tick(0, 9)
    assert outcome is Outcome.FAILED and harness.posts() == []
    record = harness.service.store.get_post(CHANNEL, APP, period)
    assert record is not None and record.state is PostState.RELEASED and "-50040" in (record.error or "")
    assert "failed and will be retried" in blocks_text(harness.command(""))
    assert harness.tick(0, 9, 1) == [("2026-03-30", Outcome.POSTED)]
    assert harness.service.store.get_post(CHANNEL, APP, period).attempts == 2  # type: ignore[union-attr]


def test_desk_failing_with_a_last_good_list_posts_it_with_the_warning(harness: Harness) -> None:
    harness.command("daily 09:00")
    harness.tick(0, 9)
    harness.emu.inject(Fault(code=-50040), times=-1)
    assert harness.tick(1, 9) == [("2026-03-31", Outcome.POSTED)]
    stale = harness.posts()[-1]
    assert ":warning:" in blocks_text(stale) and "-50040" in blocks_text(stale)
    assert "No changes" in blocks_text(stale)


def test_not_in_channel_records_the_hint_and_delivers_once_invited(harness: Harness) -> None:
    harness.command("daily 09:00")
    harness.fake.script("chat.postMessage", body={"ok": False, "error": "not_in_channel"})
    assert harness.tick(0, 9) == [("2026-03-30", Outcome.FAILED)]
    assert harness.service.store.get_subscription(CHANNEL, APP).hint == INVITE_HINT  # type: ignore[union-attr]
    assert "invite the bot" in blocks_text(harness.command(""))
    assert harness.tick(0, 9, 1) == [("2026-03-30", Outcome.POSTED)]
    assert harness.service.store.get_subscription(CHANNEL, APP).hint is None  # type: ignore[union-attr]
    assert len(harness.posts()) == 1


@pytest.mark.parametrize("error", ["channel_not_found", "is_archived"])
def test_a_missing_or_archived_channel_disables_the_subscription(
    harness: Harness, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    harness.command("daily 09:00")
    harness.fake.script("chat.postMessage", body={"ok": False, "error": error})
    assert harness.tick(0, 9) == [("2026-03-30", Outcome.FAILED)]
    assert f"disabled: Slack says {error}" in caplog.text
    assert harness.tick(1, 9) == []
    assert "Paused" in blocks_text(harness.command(""))
    harness.command("daily 09:00")  # subscribing again resumes it
    assert harness.tick(2, 9) == [("2026-04-01", Outcome.POSTED)]


def test_a_rate_limited_post_is_retried_by_the_client(harness: Harness) -> None:
    harness.command("daily 09:00")
    harness.fake.script("chat.postMessage", status=429, headers={"Retry-After": "0"})
    assert harness.tick(0, 9) == [("2026-03-30", Outcome.POSTED)]
    assert len(harness.fake.calls("chat.postMessage")) == 2 and len(harness.posts()) == 1


@BOTH_DATABASES
def test_a_post_whose_answer_was_lost_is_found_in_history_not_reposted(harness: Harness) -> None:
    harness.command("daily 09:00")
    harness.fake.script("chat.postMessage", status=0)  # posted, then the connection drops
    assert harness.tick(0, 9) == [("2026-03-30", Outcome.IN_DOUBT)]
    assert harness.tick(0, 9, 5) == [("2026-03-30", Outcome.BUSY)]  # lease still running
    harness.timer.value += LEASE + 1
    assert harness.tick(0, 9, 6) == [("2026-03-30", Outcome.FOUND)]
    assert len(harness.fake.calls("chat.postMessage")) == 1 and len(harness.posts()) == 1
    record = harness.service.store.get_post(CHANNEL, APP, "2026-03-30")
    assert record is not None and record.state is PostState.POSTED and record.ts == harness.posts()[0]["ts"]
    assert harness.service.store.get_snapshot(CHANNEL, APP) is not None  # what the lost post showed
    assert harness.tick(1, 9) == [("2026-03-31", Outcome.POSTED)]
    assert "No changes" in blocks_text(harness.posts()[-1])


def test_a_server_error_is_in_doubt_then_posted_when_history_shows_nothing(harness: Harness) -> None:
    harness.command("daily 09:00")
    harness.fake.script("chat.postMessage", status=500)
    assert harness.tick(0, 9) == [("2026-03-30", Outcome.IN_DOUBT)]
    harness.timer.value += LEASE + 1
    assert harness.tick(0, 9, 2) == [("2026-03-30", Outcome.POSTED)]
    assert harness.periods() == ["2026-03-30"]


def test_a_crashed_claim_that_cannot_be_verified_is_skipped(harness: Harness) -> None:
    harness.command("daily 09:00")
    harness.at(0, 9)
    store = harness.service.store
    store.claim(CHANNEL, APP, "2026-03-30", "crashed", now=harness.timer.value, lease=LEASE, scheduled_for=0)
    harness.timer.value += LEASE + 1
    harness.fake.script("conversations.history", body={"ok": False, "error": "missing_scope"})
    assert harness.tick(0, 9, 5) == [("2026-03-30", Outcome.SKIPPED)]
    assert harness.tick(0, 9, 6) == [("2026-03-30", Outcome.DONE)]
    assert harness.posts() == []
    assert "skipped" in blocks_text(harness.command(""))


def test_the_history_check_reads_past_the_first_page(harness: Harness) -> None:
    harness.command("daily 09:00")
    harness.fake.script("chat.postMessage", status=0)
    harness.tick(0, 9)
    for number in range(230):  # chatter after the lost digest pushes it to the second page
        harness.service.slack.chat_postMessage(channel=CHANNEL, text=f"chatter {number}")
    harness.timer.value += LEASE + 1
    assert harness.tick(0, 9, 1) == [("2026-03-30", Outcome.FOUND)]
    assert len(harness.fake.calls("chat.postMessage")) == 231


def test_post_now_posts_at_once_whatever_the_schedule(harness: Harness) -> None:
    result = harness.service.post_now("C0ANY")
    assert result.outcome is Outcome.POSTED and result.period.startswith("manual-")
    assert harness.periods("C0ANY") == [result.period]


# --- seeding, ticker, command line -----------------------------------------------------------


def test_seed_from_settings_is_idempotent(harness: Harness) -> None:
    from dataclasses import replace

    seeded = replace(harness.settings, digest_channel="C0SEED", digest_schedule="weekdays 09:00 Europe/Berlin")
    harness.service.settings = DigestSettings.of(seeded)
    harness.at(0, 6)
    harness.service.seed_from_settings()
    first = harness.service.store.get_subscription("C0SEED", APP)
    harness.at(0, 8)
    harness.service.seed_from_settings()  # a restart: unchanged, so its start time is kept
    assert harness.service.store.get_subscription("C0SEED", APP) == first
    harness.service.settings = replace(harness.service.settings, schedule="daily 10:00")
    harness.service.seed_from_settings()
    assert harness.service.store.get_subscription("C0SEED", APP).schedule == "daily 10:00 UTC"  # type: ignore[union-attr]
    harness.service.settings = replace(harness.service.settings, schedule="daily noon")
    with pytest.raises(ConfigError, match="DIGEST_SCHEDULE"):
        harness.service.seed_from_settings()


def test_the_ticker_ticks_until_stopped(harness: Harness) -> None:
    harness.command("daily 09:00")
    harness.at(0, 9)
    ticker = DigestTicker(harness.service, interval=0.05).start()
    try:
        assert harness.fake.wait_for(lambda fake: len(fake.messages(CHANNEL)) == 1, timeout=5)
        assert harness.fake.wait_for(lambda _: ticker.ticks >= 3, timeout=5)
    finally:
        ticker.stop()
    assert not ticker.running
    assert len(harness.posts()) == 1


def test_the_ticker_survives_a_failing_tick(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    calls = threading.Semaphore(0)

    def broken_tick(now: datetime | None = None) -> Any:
        calls.release()
        raise RuntimeError("database unreachable")

    harness.service.tick = broken_tick  # type: ignore[method-assign]
    ticker = DigestTicker(harness.service, interval=0.02).start()
    try:
        assert all(calls.acquire(timeout=5) for _ in range(3))
    finally:
        ticker.stop()
    assert "digest tick failed" in caplog.text


def digest_cli(argv: list[str], harness: Harness) -> int:
    """`python -m bot digest ARGV`, in this process, with the harness's settings."""
    return cmd_digest(build_parser().parse_args(["digest", *argv]), harness.settings)


def test_the_command_line(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    harness.command("daily 09:00")
    assert digest_cli(["--due", "--now", "2026-03-30T08:00Z"], harness) == 0
    assert "no digest due" in capsys.readouterr().out
    assert digest_cli(["--due", "--now", "2026-03-30T09:00:30+00:00"], harness) == 0
    assert "C0DIGEST 2026-03-30: posted" in capsys.readouterr().out
    assert digest_cli(["--channel", "C0OTHER"], harness) == 0
    assert len(harness.posts("C0OTHER")) == 1
    harness.emu.inject(Fault(code=-50040))
    assert digest_cli(["--channel", "C0OTHER"], harness) == 3
    assert "Desk" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        digest_cli(["--due", "--now", "yesterday"], harness)
    with pytest.raises(ConfigError, match="--app: 'staging' is not one of this bot's apps"):
        digest_cli(["--channel", "C0OTHER", "--app", "staging"], harness)


# --- several Desk apps ------------------------------------------------------------------------------

STAGING_SDKAPPID, STAGING_KEY = 1400000555, "staging-secret-key"


@dataclass
class TwoApps:
    """A bot serving `prod` (the default app) and `staging`, each on its own emulator."""

    fake: FakeSlack
    prod: DeskEmulator
    staging: DeskEmulator
    service: DigestService
    clock: Dial[datetime]
    timer: Dial[float]

    def tick(self, day: int, hour: int, minute: int = 0) -> list[tuple[str, str, str, Outcome]]:
        self.clock.value = MONDAY + timedelta(days=day, hours=hour, minutes=minute)
        self.timer.value = max(self.timer.value, self.clock.value.timestamp())
        report = self.service.tick(self.clock.value)
        return [(r.channel_id, r.app, r.period, r.outcome) for r in report.results]

    def command(self, app: str, args: str, channel: str = CHANNEL, user: str | None = None) -> dict[str, Any]:
        return self.service.handle_command(channel, app, args, user_id=user)

    def posts_of(self, app: str, channel: str = CHANNEL) -> list[dict[str, Any]]:
        return [m for m in self.fake.messages(channel) if m["metadata"]["event_payload"].get("app") == app]


@e2e_fixture
def two(database_url: str) -> Iterator[TwoApps]:
    clock = Dial(MONDAY)
    timer = Dial(MONDAY.timestamp())
    with (
        FakeSlack(clock=lambda: timer.value) as fake,
        DeskEmulator(rate_limit=1000, languages=[("en", True), ("ja", False)]) as prod,
        DeskEmulator(
            sdkappid=STAGING_SDKAPPID, key=STAGING_KEY, rate_limit=1000, languages=[("de", True), ("fr", False)]
        ) as staging,
    ):
        common: dict[str, Any] = dict(
            DATABASE_URL=database_url,
            SLACK_BOT_TOKEN=fake.token,
            SLACK_API_URL=fake.api_url,
            DESK_CACHE_TTL=0,
            DIGEST_DEFAULT_TZ="UTC",
            DESK_RATE_LIMIT=1000,
        )
        prod_settings = make_settings(prod, **common)
        staging_settings = make_settings(
            staging, DESK_SDKAPPID=STAGING_SDKAPPID, DESK_SECRET_KEY=STAGING_KEY, **common
        )
        apps = [
            desk_app("prod", prod_settings, "Production (Singapore)"),
            desk_app("staging", staging_settings, "Staging (Frankfurt)"),
        ]
        service = digest_service(prod_settings, apps, clock, timer)
        yield TwoApps(fake, prod, staging, service, clock, timer)
        service.store.engine.dispose()


def test_replies_name_the_app_and_each_app_has_its_own_subscription(two: TwoApps) -> None:
    reply = two.command("staging", "daily 09:00", user="U0ALICE")
    assert "This channel will get the Desk languages of *Staging (Frankfurt)* *every day at 09:00 (UTC)*" in (
        blocks_text(reply)
    )
    assert "`/desk-languages staging digest off`" in blocks_text(reply)
    assert reply["text"].startswith("Digest of Staging (Frankfurt) subscribed")
    two.command("prod", "weekly mon 09:00")
    assert "of *Production (Singapore)* *every Monday at 09:00 (UTC)*" in blocks_text(two.command("prod", ""))
    assert "of *Staging (Frankfurt)* *every day at 09:00 (UTC)*" in blocks_text(two.command("staging", ""))
    assert "no Desk languages digest of *Staging (Frankfurt)*" in blocks_text(two.command("staging", "", "C0OTHER"))

    stopped = two.command("staging", "off")
    assert "no longer gets the Desk languages of *Staging (Frankfurt)*" in blocks_text(stopped)
    assert two.service.store.get_subscription(CHANNEL, "staging") is None
    assert two.service.store.get_subscription(CHANNEL, "prod") is not None  # the other app's is untouched
    assert "every Monday" in blocks_text(two.command("prod", ""))
    bad = two.command("staging", "hourly")
    assert "`/desk-languages staging digest weekdays 09:00 Europe/Berlin`" in blocks_text(bad)
    with pytest.raises(ValueError, match="'eu' is not a configured Desk app"):
        two.command("eu", "daily 09:00")


def test_the_home_tab_lists_an_apps_channels_with_who_set_them_up(two: TwoApps) -> None:
    two.clock.value = MONDAY + timedelta(hours=7)
    two.command("staging", "daily 09:00", "C0ONE", user="U0ALICE")
    two.command("staging", "weekly fri 16:00", "C0TWO", user="U0BOB")
    two.command("prod", "daily 09:00", "C0ONE", user="U0CAROL")
    listed = two.service.subscriptions("staging")
    assert [(s.channel_id, s.schedule, s.created_by, s.created_at) for s in listed] == [
        ("C0ONE", "daily 09:00 UTC", "U0ALICE", (MONDAY + timedelta(hours=7)).timestamp()),
        ("C0TWO", "weekly fri 16:00 UTC", "U0BOB", (MONDAY + timedelta(hours=7)).timestamp()),
    ]
    assert [s.created_by for s in two.service.subscriptions("prod")] == ["U0CAROL"]
    with pytest.raises(ValueError, match="not a configured Desk app"):
        two.service.subscriptions("eu")


@BOTH_DATABASES
def test_one_channel_gets_each_apps_digest_from_that_app(two: TwoApps) -> None:
    two.command("prod", "daily 09:00")
    two.command("staging", "weekly wed 09:00")
    for day in range(7):
        two.tick(day, 9)
        two.tick(day, 9, 1)
    prod_posts, staging_posts = two.posts_of("prod"), two.posts_of("staging")
    assert [m["metadata"]["event_payload"]["period"] for m in prod_posts] == [
        f"2026-{day}" for day in ("03-30", "03-31", "04-01", "04-02", "04-03", "04-04", "04-05")
    ]
    assert [m["metadata"]["event_payload"]["period"] for m in staging_posts] == ["2026-W14"]
    for message in prod_posts:
        assert message["blocks"][0]["text"]["text"] == "Desk chatbot languages: digest — Production (Singapore)"
        assert f"SDKAppID {two.prod.sdkappid}" in blocks_text(message) and "Japanese" in blocks_text(message)
        assert "German" not in blocks_text(message)
    [staged] = staging_posts
    assert staged["blocks"][0]["text"]["text"] == "Desk chatbot languages: digest — Staging (Frankfurt)"
    assert f"SDKAppID {STAGING_SDKAPPID}" in blocks_text(staged) and "German" in blocks_text(staged)
    assert "Japanese" not in blocks_text(staged) and "First digest" in blocks_text(staged)
    assert staged["text"].startswith("Desk languages digest — Staging (Frankfurt) (first digest)")
    def lists(emulator: DeskEmulator) -> int:
        return sum(call.api == "robot_get_language_list" for call in emulator.calls)

    # Each list from its own Desk app: one per digest (DESK_CACHE_TTL=0 here), plus the one the
    # digest's readiness line read for its report (cached for DESK_STATUS_TTL after that).
    assert (lists(two.prod), lists(two.staging)) == (7 + 1, 1 + 1)

    # Changes are per app: staging's next digest compares with staging's last one only.
    two.staging.set_languages([("de", True), ("fr", False), ("it", False)])
    two.tick(9, 9)  # Wednesday of the next week
    assert "*Added:* Italian (`it`)" in blocks_text(two.posts_of("staging")[-1])
    assert "No changes" in blocks_text(two.posts_of("prod")[-1])


@BOTH_DATABASES
def test_two_apps_due_the_same_minute_in_one_channel_both_post_once(two: TwoApps) -> None:
    two.command("prod", "daily 09:00")
    two.command("staging", "daily 09:00")
    assert two.tick(0, 9) == [
        (CHANNEL, "prod", "2026-03-30", Outcome.POSTED),
        (CHANNEL, "staging", "2026-03-30", Outcome.POSTED),
    ]
    assert [outcome for *_, outcome in two.tick(0, 9, 1)] == [Outcome.DONE, Outcome.DONE]
    assert len(two.fake.calls("chat.postMessage")) == 2
    for app in ("prod", "staging"):
        [message] = two.posts_of(app)
        assert message["metadata"] == {"event_type": EVENT_TYPE, "event_payload": {"period": "2026-03-30", "app": app}}
        record = two.service.store.get_post(CHANNEL, app, "2026-03-30")
        assert record is not None and record.state is PostState.POSTED and record.ts == message["ts"]
    # A second process at the same minute finds both done.
    other = DigestService(
        DigestStore(connect(database_url_of(two)), apps=two.service.apps.names),
        list(two.service.apps),
        two.service.slack,
        two.service.settings,
        two.clock,
        timer=two.timer,
        lease=LEASE,
    )
    assert [r.outcome for r in other.tick(two.clock.value).results] == [Outcome.DONE, Outcome.DONE]
    other.store.engine.dispose()


def test_a_refused_post_pauses_or_hints_only_that_app(two: TwoApps) -> None:
    two.command("prod", "daily 09:00")
    two.command("staging", "daily 09:00")
    two.fake.script("chat.postMessage")  # prod's (posted first): as usual
    two.fake.script("chat.postMessage", body={"ok": False, "error": "not_in_channel"})  # staging's
    two.tick(0, 9)
    assert two.service.store.get_subscription(CHANNEL, "staging").hint == INVITE_HINT  # type: ignore[union-attr]
    assert two.service.store.get_subscription(CHANNEL, "prod").hint is None  # type: ignore[union-attr]


def test_a_crashed_claim_of_one_app_is_not_settled_by_the_other_apps_digest(two: TwoApps) -> None:
    two.command("prod", "daily 09:00")
    two.command("staging", "daily 09:00")
    store = two.service.store
    at = (MONDAY + timedelta(hours=9)).timestamp()
    store.claim(CHANNEL, "staging", "2026-03-30", "crashed", now=at, lease=LEASE, scheduled_for=at)
    assert two.tick(0, 9) == [
        (CHANNEL, "prod", "2026-03-30", Outcome.POSTED),
        (CHANNEL, "staging", "2026-03-30", Outcome.BUSY),
    ]
    two.timer.value += LEASE + 1
    # prod's message for the same period is in the history: it is not staging's.
    assert two.tick(0, 9, 12)[1] == (CHANNEL, "staging", "2026-03-30", Outcome.POSTED)
    assert len(two.posts_of("staging")) == len(two.posts_of("prod")) == 1
    assert len(two.fake.calls("conversations.history")) == 1  # it did check first


def test_a_lost_answer_is_found_in_history_for_its_app(two: TwoApps) -> None:
    two.command("staging", "daily 09:00")
    two.fake.script("chat.postMessage", status=0)  # posted, then the connection drops
    assert two.tick(0, 9) == [(CHANNEL, "staging", "2026-03-30", Outcome.IN_DOUBT)]
    two.timer.value += LEASE + 1
    assert two.tick(0, 9, 12) == [(CHANNEL, "staging", "2026-03-30", Outcome.FOUND)]
    [message] = two.posts_of("staging")
    assert two.service.store.get_post(CHANNEL, "staging", "2026-03-30").ts == message["ts"]  # type: ignore[union-attr]
    assert two.service.store.get_snapshot(CHANNEL, "staging") is not None


def test_a_digest_posted_before_several_apps_is_the_default_apps(two: TwoApps) -> None:
    """A message of the single-app version carries the period only: it is prod's, not staging's."""
    two.command("prod", "daily 09:00")
    two.command("staging", "daily 09:00")
    store = two.service.store
    at = (MONDAY + timedelta(hours=9)).timestamp()
    for app in ("prod", "staging"):
        store.claim(CHANNEL, app, "2026-03-30", "crashed", now=at, lease=LEASE, scheduled_for=at)
    two.timer.value = at + 5  # the crashed process posted, then died before recording it
    two.service.slack.chat_postMessage(
        channel=CHANNEL,
        text="Desk languages digest (first digest).",
        metadata={"event_type": EVENT_TYPE, "event_payload": {"period": "2026-03-30"}},
    )
    two.timer.value += LEASE + 1
    assert two.tick(0, 9, 12) == [
        (CHANNEL, "prod", "2026-03-30", Outcome.FOUND),
        (CHANNEL, "staging", "2026-03-30", Outcome.POSTED),
    ]
    assert len(two.posts_of("staging")) == 1 and two.posts_of("prod") == []  # prod's is the old one
    assert len(two.fake.messages(CHANNEL)) == 2


def test_post_now_and_seeding_use_the_right_app(two: TwoApps) -> None:
    result = two.service.post_now("C0ANY", "staging")
    assert (result.app, result.outcome) == ("staging", Outcome.POSTED)
    assert "German" in blocks_text(two.posts_of("staging", "C0ANY")[0])
    assert two.service.post_now("C0ANY").app == "prod"
    from dataclasses import replace

    two.service.settings = replace(two.service.settings, channel="C0SEED", schedule="daily 10:00")
    two.service.seed_from_settings()
    assert two.service.store.get_subscription("C0SEED", "prod") is not None
    assert two.service.store.get_subscription("C0SEED", "staging") is None


def test_subscriptions_of_an_app_not_configured_are_never_posted(
    two: TwoApps, caplog: pytest.LogCaptureFixture
) -> None:
    two.service.store.put_subscription(CHANNEL, "eu", "daily 09:00 UTC", MONDAY.timestamp())
    two.command("staging", "daily 09:00")
    assert two.tick(0, 9) == [(CHANNEL, "staging", "2026-03-30", Outcome.POSTED)]
    assert two.tick(1, 9) == [(CHANNEL, "staging", "2026-03-31", Outcome.POSTED)]
    assert [m["metadata"]["event_payload"]["app"] for m in two.fake.messages(CHANNEL)] == ["staging", "staging"]
    warnings = [r for r in caplog.records if "the Desk app 'eu' are not posted" in r.getMessage()]
    assert len(warnings) == 1  # once, not every tick


def test_the_command_line_summary_names_the_app_with_several(two: TwoApps) -> None:
    two.command("staging", "daily 09:00")
    assert two.service.tick(MONDAY + timedelta(hours=9)).summary() == (
        "2026-03-30 09:00 UTC: C0DIGEST staging 2026-03-30: posted"
    )


def test_the_service_and_its_store_must_serve_the_same_apps(two: TwoApps) -> None:
    apps = list(two.service.apps)
    store = DigestStore(connect(database_url_of(two)))  # built for the one app `default`
    with pytest.raises(ValueError, match=r"built for the apps \['default'\]"):
        DigestService(store, apps, two.service.slack, two.service.settings)
    with pytest.raises(ValueError, match="same name"):
        DigestService(DigestStore(store.engine, ["prod", "prod"]), [apps[0], apps[0]], two.service.slack,
                      two.service.settings)
    store.engine.dispose()


def database_url_of(two: TwoApps) -> str:
    """The URL of the database `two`'s service uses, for a store of a second process."""
    return two.service.store.engine.url.render_as_string(hide_password=False)
