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

from bot.blocks import RenderContext
from bot.boot import build_desk_client, build_web_client
from bot.cli import build_parser, cmd_digest
from bot.config import ConfigError, Settings
from bot.deps import DeskApp
from bot.desk.sandbox import DeskEmulator, Fault
from bot.digests.service import EVENT_TYPE, INVITE_HINT, DigestService, Outcome
from bot.digests.store import DigestStore, PostState
from bot.digests.ticker import DigestTicker
from bot.slack_sandbox import FakeSlack
from tests.support.environment import BOTH_DATABASES, make_settings

CHANNEL = "C0DIGEST"
APP = "default"  # the one app of a bot that serves one
LEASE = 600.0  # longer than the minutes the tests step through
MONDAY = datetime(2026, 3, 30, tzinfo=UTC)  # simulated dates lie in the past: Slack ts > period start


class Dial:
    """A settable clock."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self) -> Any:
        return self.value


@dataclass
class Harness:
    fake: FakeSlack
    emu: DeskEmulator
    service: DigestService
    settings: Settings
    clock: Dial
    timer: Dial

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


@pytest.fixture
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
    store = DigestStore.from_url(settings.database_url.value, apps=[app.name for app in apps])
    service = DigestService(store, apps, build_web_client(settings), settings, clock, timer=timer, lease=LEASE)
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
    harness.service.settings = seeded
    harness.at(0, 6)
    harness.service.seed_from_settings()
    first = harness.service.store.get_subscription("C0SEED", APP)
    harness.at(0, 8)
    harness.service.seed_from_settings()  # a restart: unchanged, so its start time is kept
    assert harness.service.store.get_subscription("C0SEED", APP) == first
    harness.service.settings = replace(seeded, digest_schedule="daily 10:00")
    harness.service.seed_from_settings()
    assert harness.service.store.get_subscription("C0SEED", APP).schedule == "daily 10:00 UTC"  # type: ignore[union-attr]
    harness.service.settings = replace(seeded, digest_schedule="daily noon")
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
