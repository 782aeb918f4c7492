"""`watch` end to end over loopback: FakeSlack, the Desk emulator, a real SQLite/PostgreSQL database.

Time is a dial (`timer`): each `poll()` moves it one interval on, so every tick is a new slot.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.boot import build_desk_client, build_language_manager, build_web_client
from bot.cli import build_parser, cmd_watch
from bot.config import Settings
from bot.database import Claim, connect
from bot.deps import DeskApp
from bot.management.store import AuditEntry, ChangeStore
from bot.sandbox.desk_emulator import DeskEmulator, Fault
from bot.sandbox.slack_emulator import FakeSlack
from bot.slack.blocks import RenderContext
from bot.slack.grammar import Action, parse_command
from bot.watch.service import EVENT_TYPE, Outcome, Poll, WatchService
from bot.watch.store import AppState, WatchStore
from tests.support.clocks import Dial
from tests.support.environment import BOTH_DATABASES, make_settings
from tests.support.served import ROOT, child_env
from tests.support.tiers import e2e_fixture

CHANNEL = "C0WATCH"
OTHER = "C0OTHER"
APP = "default"
INTERVAL = 60.0
LEASE = 600.0


@dataclass
class Harness:
    fake: FakeSlack
    emu: DeskEmulator
    settings: Settings
    timer: Dial[float]
    app: DeskApp
    database_url: str
    services: list[WatchService]

    @property
    def service(self) -> WatchService:
        return self.services[0]

    def new_service(self, **extra: Any) -> WatchService:
        engine = connect(self.database_url)
        service = WatchService(
            WatchStore(engine), [self.app], build_web_client(self.settings), interval=INTERVAL,
            who_changed=ChangeStore(engine).who_changed, timer=extra.pop("timer", self.timer), lease=LEASE,
            spacing=extra.pop("spacing", 0.0), **extra,
        )
        self.services.append(service)
        return service

    def poll(self) -> Poll:
        """The next interval: one tick, its poll outcome."""
        self.timer.value += INTERVAL
        return self.service.tick().polls[APP]

    def watch(self, channel: str = CHANNEL, args: str = "", user: str = "U0ALICE") -> dict[str, Any]:
        return self.service.handle_command(channel, APP, args, user_id=user)

    def alerts(self, channel: str = CHANNEL) -> list[dict[str, Any]]:
        return [m for m in self.fake.messages(channel) if (m.get("metadata") or {}).get("event_type") == EVENT_TYPE]

    def texts(self, channel: str = CHANNEL) -> list[str]:
        return [m["text"] for m in self.alerts(channel)]


@e2e_fixture
def harness(database_url: str) -> Iterator[Harness]:
    # Slot-aligned, a little after the real time (lists carry the real fetch time).
    timer = Dial((time.time() // INTERVAL + 1) * INTERVAL)
    with FakeSlack(clock=lambda: timer.value) as fake, DeskEmulator(rate_limit=1000) as emu:
        emu.set_languages([("en", 1), ("ja", 0)])
        settings = make_settings(
            emu, DATABASE_URL=database_url, SLACK_BOT_TOKEN=fake.token, SLACK_API_URL=fake.api_url,
            DESK_CACHE_TTL=0, DESK_RATE_LIMIT=1000,
        )
        client = build_desk_client(settings)
        app = DeskApp(APP, client, RenderContext(client.sdkappid, "emulator"))
        h = Harness(fake, emu, settings, timer, app, database_url, [])
        h.new_service()
        yield h
        for service in h.services:
            service.store.engine.dispose()


def started(h: Harness, *channels: str) -> None:
    """Channels watching, and the first list seen."""
    for channel in channels or (CHANNEL,):
        h.watch(channel)
    assert h.poll() is Poll.FIRST


# --- the command ------------------------------------------------------------------------------


def test_grammar_takes_watch_and_its_argument() -> None:
    assert parse_command("WATCH").action is Action.WATCH and parse_command("watch").args == ""
    assert parse_command("watch off").action is Action.WATCH and parse_command("watch off").args == "off"
    staging = parse_command("staging watch off", ["prod", "staging"])
    assert (staging.action, staging.app, staging.args) == (Action.WATCH, "staging", "off")


def test_watch_shows_since_when_and_who_then_off(harness: Harness) -> None:
    assert "will get an alert" in harness.watch()["text"]
    shown = harness.watch(user="U0BOB")
    assert "watches the Desk languages" in shown["text"] and "<@U0ALICE>" in shown["text"]  # who set it up
    assert f"<!date^{int(harness.timer.value)}^" in shown["text"]
    assert "no longer watches" in harness.watch(args="off")["text"]
    assert "nothing to stop" in harness.watch(args="off")["text"]
    assert harness.service.store.get_watch(CHANNEL, APP) is None
    assert "watch off" in harness.watch(args="sometimes")["text"]  # usage, nothing stored
    assert harness.service.store.get_watch(CHANNEL, APP) is None


# --- alerts -----------------------------------------------------------------------------------


def test_add_remove_and_default_change_alerts(harness: Harness) -> None:
    started(harness)
    assert harness.alerts() == []  # the first list is no change
    harness.emu.set_languages([("en", 1), ("ja", 0), ("vi", 0)])
    assert harness.poll() is Poll.CHANGED
    harness.emu.set_languages([("en", 1), ("vi", 0)])
    assert harness.poll() is Poll.CHANGED
    harness.emu.set_languages([("en", 0), ("vi", 1)])
    assert harness.poll() is Poll.CHANGED
    added, removed, default = harness.texts()
    assert "Added Vietnamese (`vi`)" in added and "Removed" not in added
    assert "Removed Japanese (`ja`)" in removed and "Added" not in removed
    assert "Default changed from English (`en`) to Vietnamese (`vi`)" in default
    first = harness.alerts()[0]
    assert f"Seen by the bot <!date^{int(harness.timer.value - 2 * INTERVAL)}^" in json.dumps(first["blocks"])
    assert first["metadata"]["event_payload"]["app"] == APP


def test_changes_back_and_forth_inside_one_poll_slot_are_each_alerted_once(harness: Harness) -> None:
    """A→B, B→A, A→B seen within one slot (refreshes, changes through the bot) are three changes,
    each alerted once: with the slot in the change's id, the third was the first again and its
    alert went out a second time."""
    started(harness)
    service, now = harness.service, harness.timer.value + 1
    seen = []
    for languages in ([("en", 1), ("ja", 0), ("vi", 0)], [("en", 1), ("ja", 0)], [("en", 1), ("ja", 0), ("vi", 0)]):
        harness.emu.set_languages(languages)
        seen.append(service.observe(service.app(APP), harness.app.client.get_languages(refresh=True), now)[0])
        service.deliver(now)
    assert seen == [Poll.CHANGED] * 3
    texts = harness.texts()
    assert len(texts) == 3 and len(service.store.events_since(0)) == 3  # three events, one alert each
    assert ["Added" in texts[0], "Removed" in texts[1], "Added" in texts[2]] == [True, True, True]


def test_nothing_changed_a_failed_read_and_a_flip_back_give_no_alert(harness: Harness) -> None:
    started(harness)
    assert harness.poll() is Poll.UNCHANGED
    harness.emu.inject(Fault(code=60006))  # the client serves the last good list, stale
    assert harness.poll() is Poll.FAILED
    harness.emu.inject(Fault(http_status=502), times=5)
    assert harness.poll() is Poll.FAILED
    harness.emu.set_languages([("en", 1), ("ja", 0), ("vi", 0)])  # changed and back between two polls
    harness.emu.set_languages([("en", 1), ("ja", 0)])
    assert harness.poll() is Poll.UNCHANGED
    assert harness.alerts() == []


def test_a_read_failed_at_the_change_reports_it_at_the_next_good_read(harness: Harness) -> None:
    started(harness)
    harness.emu.set_languages([("en", 1)])
    harness.emu.inject(Fault(code=60006))
    assert harness.poll() is Poll.FAILED  # stale: not a change (nor the lack of one)
    assert harness.poll() is Poll.CHANGED
    assert len(harness.texts()) == 1 and "Removed Japanese" in harness.texts()[0]


def test_an_outage_longer_than_three_intervals_gives_one_outage_and_one_recovery_alert(harness: Harness) -> None:
    started(harness, CHANNEL, OTHER)
    harness.emu.inject(Fault(code=60006), times=-1)
    polls = [harness.poll() for _ in range(6)]
    assert polls == [Poll.FAILED, Poll.FAILED, Poll.OUTAGE, Poll.FAILED, Poll.FAILED, Poll.FAILED]
    harness.emu.clear_faults()
    harness.emu.set_languages([("en", 1), ("ja", 0), ("vi", 0)])  # changed during the outage
    assert harness.poll() is Poll.CHANGED
    assert harness.poll() is Poll.UNCHANGED
    for channel in (CHANNEL, OTHER):
        outage, recovery, change = harness.texts(channel)
        assert outage.startswith("Cannot reach Desk for SDKAppID") and "(60006, " in outage
        assert "SDKAppID" in outage and " since " in outage and "UTC" in outage
        assert recovery.startswith("Desk is reachable again")
        assert "Added Vietnamese" in change


def test_a_change_through_the_bot_names_who_made_it(harness: Harness) -> None:
    started(harness)
    engine = harness.service.store.engine
    manager = build_language_manager(harness.settings, (harness.app,), build_web_client(harness.settings),
                                     ChangeStore(engine))
    assert manager.apply_from_cli(harness.app, "U0CAROL", "add", "vi").outcome.status.value == "applied"
    # A removal in the console meanwhile: nobody to name.
    harness.emu.set_languages([("en", 1), ("vi", 0)])
    assert harness.poll() is Poll.CHANGED
    (text,) = harness.texts()
    assert "Added Vietnamese (`vi`) by <@U0CAROL>" in text
    assert "Removed Japanese (`ja`)" in text and "Japanese (`ja`) by" not in text


def test_an_old_audit_entry_names_nobody(harness: Harness) -> None:
    started(harness)
    store = ChangeStore(harness.service.store.engine)
    store.record(AuditEntry(time.time() - 3600, "U0OLD", APP, harness.app.client.sdkappid, "add", "vi", "applied",
                            None))
    harness.emu.set_languages([("en", 1), ("ja", 0), ("vi", 0)])
    assert harness.poll() is Poll.CHANGED
    assert "by <@" not in harness.texts()[0]


def test_posts_to_one_channel_are_spaced_and_a_429_waits(harness: Harness) -> None:
    waits: list[float] = []
    harness.services[0] = harness.new_service(spacing=1.0, sleep=waits.append)
    started(harness)
    harness.emu.set_languages([("en", 1)])
    harness.service.poll(harness.app, harness.timer.value + INTERVAL)
    harness.emu.set_languages([("en", 1), ("vi", 0)])
    harness.timer.value += 2 * INTERVAL
    harness.service.poll(harness.app, harness.timer.value)
    harness.fake.script("chat.postMessage", status=429, headers={"Retry-After": "0"})
    results = harness.service.deliver(harness.timer.value)
    assert [r.outcome for r in results] == [Outcome.POSTED, Outcome.POSTED]
    assert len(waits) == 1 and 0.9 < waits[0] <= 1.0  # the second post waited a second after the first
    assert len(harness.fake.calls("chat.postMessage")) == 3 and len(harness.alerts()) == 2


def test_a_channel_the_bot_was_removed_from_stops_watching(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    started(harness, CHANNEL, OTHER)
    harness.fake.script("chat.postMessage", body={"ok": False, "error": "channel_not_found"})  # CHANNEL's
    harness.emu.set_languages([("en", 1)])
    with caplog.at_level(logging.WARNING, logger="bot.watch.service"):
        harness.poll()
        harness.emu.set_languages([("en", 1), ("vi", 0)])
        harness.poll()
    assert harness.alerts(CHANNEL) == [] and len(harness.alerts(OTHER)) == 2
    stopped = [r.message for r in caplog.records if "no longer watches" in r.getMessage()]
    assert len(stopped) == 1
    posted_to = [call.body["channel"] for call in harness.fake.calls("chat.postMessage")]
    assert posted_to.count(CHANNEL) == 1  # tried once, never again
    watch = harness.service.store.get_watch(CHANNEL, APP)
    assert watch is not None and not watch.enabled and "channel_not_found" in (watch.disabled_reason or "")
    assert "will get an alert" in harness.watch()["text"]  # subscribing again (after an invite) resumes it
    assert harness.service.store.get_watch(CHANNEL, APP).enabled  # type: ignore[union-attr]


# --- exactly once -----------------------------------------------------------------------------


def change_pending(h: Harness) -> str:
    """A change seen by a poll (its event recorded) but not delivered yet: its change id."""
    started(h)
    h.emu.set_languages([("en", 1)])
    h.timer.value += INTERVAL
    assert h.service.poll(h.app, h.timer.value) is Poll.CHANGED
    (event,) = h.service.store.events_since(0)
    return event.change_id


def test_a_crashed_claim_is_retried_only_after_the_history_check(harness: Harness) -> None:
    change = change_pending(harness)
    store = harness.service.store
    assert store.claim(CHANNEL, APP, change, "crashed", now=harness.timer.value, lease=LEASE) is Claim.NEW
    assert [r.outcome for r in harness.service.deliver(harness.timer.value)] == [Outcome.BUSY]  # within the lease
    assert harness.fake.calls("chat.postMessage") == []
    harness.timer.value += LEASE + 1
    assert [r.outcome for r in harness.service.deliver(harness.timer.value)] == [Outcome.POSTED]
    methods = [c.method for c in harness.fake.calls() if c.method in ("conversations.history", "chat.postMessage")]
    assert methods == ["conversations.history", "chat.postMessage"]
    assert len(harness.alerts()) == 1


def test_a_crashed_claim_whose_alert_is_in_the_channel_is_not_posted_again(harness: Harness) -> None:
    change = change_pending(harness)
    harness.fake.script("chat.postMessage", status=0)  # posted, then the connection drops
    assert [r.outcome for r in harness.service.deliver(harness.timer.value)] == [Outcome.IN_DOUBT]
    harness.timer.value += LEASE + 1
    assert [r.outcome for r in harness.service.deliver(harness.timer.value)] == [Outcome.FOUND]
    assert harness.service.deliver(harness.timer.value) == []
    assert len(harness.alerts()) == 1
    record = harness.service.store.get_alert(CHANNEL, APP, change)
    assert record is not None and record.ts == harness.alerts()[0]["ts"]


def test_a_crashed_claim_that_cannot_be_verified_is_skipped(harness: Harness) -> None:
    change = change_pending(harness)
    harness.service.store.claim(CHANNEL, APP, change, "crashed", now=harness.timer.value - LEASE - 1, lease=LEASE)
    harness.fake.script("conversations.history", body={"ok": False, "error": "missing_scope"})
    assert [r.outcome for r in harness.service.deliver(harness.timer.value)] == [Outcome.SKIPPED]
    assert harness.service.deliver(harness.timer.value) == []
    assert harness.alerts() == []


@BOTH_DATABASES
def test_three_processes_ticking_post_each_change_once_per_channel(harness: Harness) -> None:
    channels = [f"C0CH{n}" for n in range(5)]
    for channel in channels:
        harness.watch(channel)
    services = [harness.service, harness.new_service(), harness.new_service()]
    lists = [[("en", 1), ("ja", 0)], [("en", 1), ("ja", 0), ("vi", 0)], [("en", 1), ("vi", 0)],
             [("en", 0), ("vi", 1)], [("en", 0), ("vi", 1)], [("en", 1), ("ja", 0)]]
    polls: Counter[str] = Counter()
    harness.emu.reset_calls()
    # Now and then a post is lost after Slack posted it (the process "dies" mid-post).
    harness.fake.script("chat.postMessage", status=0, times=2)
    for languages in lists:
        harness.emu.set_languages(languages)
        harness.timer.value += INTERVAL
        barrier = threading.Barrier(3)

        def run(service: WatchService, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            report = service.tick()
            polls[report.polls[APP]] += 1

        threads = [threading.Thread(target=run, args=(service,)) for service in services]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    harness.timer.value += LEASE + 1  # the lost posts' claims run out; the takeover finds them
    for service in services:
        service.tick()
    assert polls[Poll.BUSY] == 2 * len(lists)  # one poll per slot for the whole deployment
    assert len(harness.emu.calls_of("robot_get_language_list")) == len(lists) + 1
    for channel in channels:
        changes = [m["metadata"]["event_payload"]["change"] for m in harness.alerts(channel)]
        assert len(changes) == 4 and len(set(changes)) == 4, channel  # first, unchanged and 4 changes


def test_watch_due_in_three_processes_at_once(harness: Harness) -> None:
    """`python -m bot watch --due` started three times at once: one poll, one alert per channel."""
    harness.timer.value = time.time() - 5  # the children run on the real clock
    harness.watch(CHANNEL)
    harness.watch(OTHER)
    store = harness.service.store
    before = harness.app.client.get_languages()
    assert store.advance_list(APP, AppState(APP), before.to_json(), 1, harness.timer.value)
    harness.emu.set_languages([("en", 1), ("ja", 0), ("vi", 0)])
    harness.emu.reset_calls()
    env = child_env(harness.database_url, harness.fake, harness.emu, DESK_WATCH_INTERVAL="3600")
    workers = [subprocess.Popen([sys.executable, "-m", "bot", "watch", "--due"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [worker.communicate(timeout=60) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0, 0], outputs
    polls = sorted(out.split(";")[0].strip() for out, _ in outputs)
    assert polls in (["polls: default: busy"] * 2 + ["polls: default: changed"],  # one slot
                     ["polls: default: busy", "polls: default: changed", "polls: default: unchanged"])  # two
    for channel in (CHANNEL, OTHER):
        assert len(harness.alerts(channel)) == 1 and "Added Vietnamese" in harness.texts(channel)[0]
    assert len(harness.emu.calls_of("robot_get_language_list")) <= 2  # 1, or 2 if an hour boundary fell between


def test_cli_watch_due(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["watch", "--due"])
    assert cmd_watch(args, harness.settings) == 0
    assert "polls: default: first" in capsys.readouterr().out


def test_the_ticker_polls_each_interval_and_posts(harness: Harness) -> None:
    from bot.watch.ticker import WatchTicker

    harness.timer.value = time.time() - 5
    harness.watch()
    service = harness.new_service(timer=time.time)
    service.interval = 0.3
    ticker = WatchTicker(service, offset=0.01).start()
    try:
        assert harness.fake.wait_for(lambda _: service.store.get_state(APP).list_json is not None, timeout=5)
        harness.emu.set_languages([("en", 1)])
        assert harness.fake.wait_for(lambda _: len(harness.alerts()) == 1, timeout=5)
    finally:
        ticker.stop()
    assert not ticker.running and ticker.ticks >= 2
    assert "Removed Japanese" in harness.texts()[0]


UNUSED_RENDER = RenderContext(sdkappid=1, region="Singapore", label="Desk", app="default")


@dataclass(frozen=True)
class _UnusedDeskApp:
    name: str = "default"
    render: RenderContext = UNUSED_RENDER

    @property
    def client(self) -> Any:
        raise AssertionError("the database is asked first: Desk is not polled")


def test_a_database_that_cannot_be_opened_is_one_warning_per_outage_without_a_traceback(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from slack_sdk import WebClient

    from bot.watch.ticker import WatchTicker

    unreachable = connect(f"sqlite:///{tmp_path / 'no-such-folder' / 'bot.db'}")  # cannot be opened
    service = WatchService(WatchStore(unreachable), [_UnusedDeskApp()], WebClient(token="xoxb-unused"),
                           interval=INTERVAL)
    ticker = WatchTicker(service)
    with caplog.at_level(logging.INFO, logger="bot.watch"):
        ticker.tick_once()
        ticker.tick_once()
    failed = [record for record in caplog.records if "watch tick failed" in record.getMessage()]
    assert len(failed) == 1  # once per outage
    assert failed[0].levelno == logging.WARNING and failed[0].exc_info is None
    assert "DatabaseUnavailable" in failed[0].getMessage() and "Check DATABASE_URL" in failed[0].getMessage()


def test_a_drift_from_the_declared_state_and_back_in_sync_are_each_said_once_across_processes(
    harness: Harness, tmp_path: Path
) -> None:
    """The alert of the change that made the app differ from desk-languages.toml says so, and the
    alert of the change that undid it says it is back in sync: carried by the change alerts, so
    exactly once per channel, from two `watch --due` processes at once, then two tickers."""
    from bot.changecontrol.declared import load_declared
    from bot.changecontrol.messages import drift_alert_line

    state_file = tmp_path / "desk-languages.toml"
    state_file.write_text('[default]\nlanguages = ["en", "ja"]\n', encoding="utf-8")
    harness.timer.value = time.time() - 5  # the children run on the real clock
    harness.watch(CHANNEL)
    harness.watch(OTHER)
    before = harness.app.client.get_languages()
    assert harness.service.store.advance_list(APP, AppState(APP), before.to_json(), 1, harness.timer.value)
    harness.emu.set_languages([("en", 1), ("ja", 0), ("vi", 0)])  # added in the console
    env = child_env(harness.database_url, harness.fake, harness.emu, DESK_WATCH_INTERVAL="3600",
                    DESK_STATE_FILE=str(state_file))
    workers = [subprocess.Popen([sys.executable, "-m", "bot", "watch", "--due"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [worker.communicate(timeout=60) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    drifted = ":warning: Now differs from `desk-languages.toml`: `- vi`. `plan` shows what `apply` would change."
    for channel in (CHANNEL, OTHER):
        (alert,) = harness.alerts(channel)
        assert drifted in json.dumps(alert["blocks"], ensure_ascii=False)

    declared = load_declared(state_file, [APP])
    tickers = [harness.new_service(drift_of_change=drift_alert_line(declared)) for _ in range(2)]
    harness.emu.set_languages([("en", 1), ("ja", 0)])  # removed again
    harness.timer.value += INTERVAL
    threads = [threading.Thread(target=ticker.tick) for ticker in tickers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for channel in (CHANNEL, OTHER):
        first, second = harness.alerts(channel)
        assert "Back in sync with `desk-languages.toml`." in json.dumps(second["blocks"])
        assert "Back in sync" not in json.dumps(first["blocks"])
