"""Exactly once across processes: separate Python processes ticking against one database.

The posts are counted where they land, at a loopback FakeSlack. Three scenarios:
- three worker processes (this module run with `python -m`, see `worker()`) serving two Desk
  apps (two emulators) tick the same simulated minutes in lock step over a week of
  schedules, DST change included, one channel following both apps at the same minute;
- a process killed in the middle of a post (FakeSlack holding the answer, or Desk hanging
  before the post), then `python -m bot digest --due` runs after the lease: no duplicate,
  and the digest is delivered;
- the same for one app of two in a channel, with worker processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.database import connect
from bot.digests.schedule import parse_schedule
from bot.digests.service import DigestService, DigestSettings
from bot.digests.store import DigestStore, PostState
from bot.sandbox.desk_emulator import SANDBOX_SDKAPPID, DeskEmulator, Fault
from bot.sandbox.slack_emulator import FakeSlack
from tests.support.environment import BOTH_DATABASES
from tests.support.served import ROOT, child_env
from tests.support.tiers import e2e_fixture

START = datetime(2026, 3, 27, tzinfo=UTC)  # in the past, so Slack ts values follow period starts
END = START + timedelta(days=7)
STEP = timedelta(minutes=53)  # an odd step, so ticks fall at many offsets from the hour
# Two Desk apps, `prod` the default; `beta` sorts first, so in a channel following both it posts first.
APPS = ("prod", "beta")
BETA_SDKAPPID, BETA_KEY = 1400000777, "beta-secret-key"
SCHEDULES = {
    ("C0DAILY", "prod"): "daily 09:00 UTC",
    ("C0DAILY", "beta"): "daily 09:00 UTC",  # both apps due at the same minute in one channel
    ("C0BERLIN", "prod"): "weekdays 08:30 Europe/Berlin",  # Europe moves its clocks on 29 March 2026
    ("C0BERLIN", "beta"): "weekly wed 08:30 Europe/Berlin",
    ("C0GAP", "prod"): "daily 02:30 Europe/Berlin",  # 02:30 does not exist on 29 March
    ("C0NEWYORK", "beta"): "weekly mon 07:45 America/New_York",
    ("C0TOKYO", "prod"): "daily 00:15 Asia/Tokyo",
    ("C0SUNDAY", "prod"): "weekly sun 23:50 UTC",
}
CHANNELS = sorted({channel for channel, _app in SCHEDULES})


def two_app_env(
    database_url: str, fake: FakeSlack, prod: DeskEmulator, beta: DeskEmulator, **extra: str
) -> dict[str, str]:
    """For `worker()`: DESK_* for `prod`, TEST_BETA_* for `beta`'s emulator."""
    return child_env(
        database_url,
        fake,
        prod,
        TEST_BETA_SDKAPPID=str(BETA_SDKAPPID),
        TEST_BETA_SECRET_KEY=BETA_KEY,
        TEST_BETA_API_URL=beta.base_url,
        **extra,
    )


@e2e_fixture
def services() -> Iterator[tuple[FakeSlack, DeskEmulator]]:
    with FakeSlack() as fake, DeskEmulator(rate_limit=1000) as emu:
        yield fake, emu


@e2e_fixture
def two_apps() -> Iterator[tuple[FakeSlack, DeskEmulator, DeskEmulator]]:
    with (
        FakeSlack() as fake,
        DeskEmulator(rate_limit=1000, languages=[("en", True), ("ja", False)]) as prod,
        DeskEmulator(sdkappid=BETA_SDKAPPID, key=BETA_KEY, rate_limit=1000, languages=[("de", True), ("fr", False)])
        as beta,
    ):
        yield fake, prod, beta


def subscribe(
    database_url: str, schedules: dict[tuple[str, str], str], since: datetime, apps: tuple[str, ...] = ("default",)
) -> None:
    store = DigestStore(connect(database_url), apps=apps)
    for (channel, app), text in schedules.items():
        store.put_subscription(channel, app, parse_schedule(text, "UTC").text(), since.timestamp())
    store.engine.dispose()


def expected_periods(since: datetime, until: datetime) -> Counter[tuple[str, str, str]]:
    expected: Counter[tuple[str, str, str]] = Counter()
    for (channel, app), text in SCHEDULES.items():
        schedule = parse_schedule(text, "UTC")
        at = schedule.next_after(since)
        while at <= until:
            expected[(channel, app, schedule.period_of(at))] += 1
            at = schedule.next_after(at)
    return expected


def delivered(fake: FakeSlack, channels: list[str]) -> Counter[tuple[str, str, str]]:
    """(channel, app, period) of every message that landed in a channel (refused posts do not)."""
    return Counter(
        (channel, message["metadata"]["event_payload"]["app"], message["metadata"]["event_payload"]["period"])
        for channel in channels
        for message in fake.messages(channel)
    )


def assert_from_the_right_emulator(message: dict[str, Any]) -> None:
    """A digest shows its own app's list and SDKAppID, and names the app (several apps)."""
    text = json.dumps(message["blocks"], ensure_ascii=False)
    if message["metadata"]["event_payload"]["app"] == "beta":
        assert f"SDKAppID {BETA_SDKAPPID}" in text and "German" in text and "Japanese" not in text
        assert message["blocks"][0]["text"]["text"] == "Desk chatbot languages: digest — Beta (emulated)"
    else:
        assert f"SDKAppID {SANDBOX_SDKAPPID}" in text and "Japanese" in text and "German" not in text
        assert message["blocks"][0]["text"]["text"] == "Desk chatbot languages: digest — Production (emulated)"


@BOTH_DATABASES
def test_three_processes_post_every_due_digest_of_two_apps_exactly_once(
    database_url: str, two_apps: tuple[FakeSlack, DeskEmulator, DeskEmulator]
) -> None:
    fake, prod, beta = two_apps
    subscribe(database_url, SCHEDULES, START, APPS)
    env = two_app_env(database_url, fake, prod, beta)
    # The first posts are refused (definitely not posted): released, then retried next tick.
    fake.script("chat.postMessage", body={"ok": False, "error": "not_in_channel"}, times=4)
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.test_digest_multiprocess"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outcomes: Counter[str] = Counter()
    winners: Counter[int] = Counter()
    try:
        now = START
        while now <= END:
            for worker in workers:  # every process ticks the same minute at the same time
                assert worker.stdin is not None
                worker.stdin.write(now.isoformat() + "\n")
                worker.stdin.flush()
            for number, worker in enumerate(workers):
                assert worker.stdout is not None
                line = worker.stdout.readline()
                assert line, f"worker {number} died"
                for _channel, _app, _period, outcome in json.loads(line):
                    outcomes[outcome] += 1
                    winners[number] += outcome == "posted"
            now += STEP
    finally:
        for worker in workers:
            if worker.stdin is not None:
                worker.stdin.close()
        for worker in workers:
            worker.wait(timeout=20)

    expected = expected_periods(START, END)
    # Counted by hand: prod 7 daily, 5 weekdays, 7 in the DST gap, 7 Tokyo, 1 Sunday;
    # beta 7 daily (the same minutes as prod's, in the same channel), 1 Wednesday, 1 Monday.
    assert sum(expected.values()) == len(expected) == 36
    assert delivered(fake, CHANNELS) == expected  # each due (channel, app, period) once, nothing else
    for channel in CHANNELS:
        for message in fake.messages(channel):
            assert_from_the_right_emulator(message)
    assert len(fake.calls("chat.postMessage")) == 36 + 4  # the refused four were tried again
    assert outcomes["posted"] == 36 and outcomes["failed"] == 4
    assert outcomes["in-doubt"] == outcomes["skipped"] == 0
    assert outcomes["done"] + outcomes["busy"] > 0  # the processes really did contend
    store = DigestStore(connect(database_url), apps=APPS)
    records = store.all_posts()
    store.engine.dispose()
    assert {(r.channel_id, r.app, r.period) for r in records} == set(expected)
    assert all(r.state is PostState.POSTED and r.ts for r in records)
    print(f"posts per worker: {dict(winners)}; outcomes: {dict(outcomes)}")


def run_due(env: dict[str, str], now: str, lease: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "digest", "--due", "--now", now, "--lease", str(lease)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


LEASE = 1.0


def test_a_process_killed_while_slack_holds_the_answer_leaves_one_post(
    database_url: str, services: tuple[FakeSlack, DeskEmulator]
) -> None:
    fake, emu = services
    scheduled = datetime(2026, 3, 30, 9, 0, tzinfo=UTC)
    subscribe(database_url, {("C0KILL", "default"): "daily 09:00 UTC"}, scheduled - timedelta(hours=1))
    env = child_env(database_url, fake, emu)
    fake.script("chat.postMessage", delay=60)  # Slack has the message; the answer never comes
    doomed = subprocess.Popen(
        [sys.executable, "-m", "bot", "digest", "--due", "--now", scheduled.isoformat(), "--lease", str(LEASE)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert fake.wait_for(lambda f: len(f.calls("chat.postMessage")) == 1, timeout=30)
    finally:
        doomed.kill()
        doomed.wait()
    claimed_at = time.time()

    early = run_due(env, "2026-03-30T09:01:00Z", LEASE)  # the lease may still protect the claim
    assert early.returncode == 0, early.stderr
    time.sleep(max(0.0, claimed_at + LEASE + 0.2 - time.time()))
    late = run_due(env, "2026-03-30T09:02:00Z", LEASE)
    assert late.returncode == 0, late.stderr
    assert "C0KILL 2026-03-30: found" in early.stdout + late.stdout

    [message] = fake.messages("C0KILL")
    assert len(fake.calls("chat.postMessage")) == 1
    store = DigestStore(connect(database_url))
    record = store.get_post("C0KILL", "default", "2026-03-30")
    assert record is not None and record.state is PostState.POSTED and record.ts == message["ts"]
    assert store.get_snapshot("C0KILL", "default") is not None
    store.engine.dispose()


def test_a_process_killed_before_posting_is_replaced_and_the_digest_delivered(
    database_url: str, services: tuple[FakeSlack, DeskEmulator]
) -> None:
    fake, emu = services
    subscribe(database_url, {("C0KILL", "default"): "daily 09:00 UTC"}, datetime(2026, 3, 30, 8, 0, tzinfo=UTC))
    env = child_env(database_url, fake, emu, DESK_TIMEOUT="30")
    emu.inject(Fault(hang=60))  # the claim is taken, then Desk never answers
    doomed = subprocess.Popen(
        [sys.executable, "-m", "bot", "digest", "--due", "--now", "2026-03-30T09:00:00Z", "--lease", str(LEASE)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not emu.calls and time.monotonic() < deadline:
            time.sleep(0.02)
        assert emu.calls, "the doomed process never reached Desk"
    finally:
        doomed.kill()
        doomed.wait()
    emu.clear_faults()
    time.sleep(LEASE + 0.2)
    after = run_due(env, "2026-03-30T09:05:00Z", LEASE)
    assert after.returncode == 0, after.stderr
    assert "C0KILL 2026-03-30: posted" in after.stdout
    assert [m["metadata"]["event_payload"]["period"] for m in fake.messages("C0KILL")] == ["2026-03-30"]
    assert len(fake.calls("conversations.history")) == 1  # it checked before posting


def run_worker_due(env: dict[str, str], now: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.test_digest_multiprocess", "--due", now],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_process_killed_while_posting_one_app_leaves_one_post_of_each(
    database_url: str, two_apps: tuple[FakeSlack, DeskEmulator, DeskEmulator]
) -> None:
    fake, prod, beta = two_apps
    subscribe(database_url, {("C0KILL", "prod"): "daily 09:00 UTC", ("C0KILL", "beta"): "daily 09:00 UTC"},
              datetime(2026, 3, 30, 8, 0, tzinfo=UTC), APPS)
    env = two_app_env(database_url, fake, prod, beta, TEST_DIGEST_LEASE=str(LEASE))
    fake.script("chat.postMessage", delay=60)  # beta's digest (posted first) lands; the answer never comes
    doomed = subprocess.Popen(
        [sys.executable, "-m", "tests.test_digest_multiprocess", "--due", "2026-03-30T09:00:00Z"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert fake.wait_for(lambda f: len(f.calls("chat.postMessage")) == 1, timeout=30)
    finally:
        doomed.kill()
        doomed.wait()
    time.sleep(LEASE + 0.2)
    after = run_worker_due(env, "2026-03-30T09:03:00Z")
    assert after.returncode == 0, after.stderr
    # beta's lost answer is found in the history (prod's digest is no stand-in for it); prod's is posted.
    assert "C0KILL beta 2026-03-30: found" in after.stdout and "C0KILL prod 2026-03-30: posted" in after.stdout
    messages = fake.messages("C0KILL")
    assert sorted(m["metadata"]["event_payload"]["app"] for m in messages) == ["beta", "prod"]
    assert len(fake.calls("chat.postMessage")) == 2
    for message in messages:
        assert_from_the_right_emulator(message)
    store = DigestStore(connect(database_url), apps=APPS)
    for message in messages:
        record = store.get_post("C0KILL", message["metadata"]["event_payload"]["app"], "2026-03-30")
        assert record is not None and record.state is PostState.POSTED and record.ts == message["ts"]
    store.engine.dispose()


def worker_service() -> DigestService:
    """The digest service of a bot serving two Desk apps: `prod` on DESK_*, `beta` on TEST_BETA_*."""
    from bot.boot import build_desk_client, build_web_client
    from bot.config import load_settings
    from bot.deps import DeskApp
    from bot.slack.blocks import RenderContext

    environ = dict(os.environ)
    prod = load_settings(environ, dotenv_path=None)
    beta = load_settings(
        {
            **environ,
            "DESK_SDKAPPID": environ["TEST_BETA_SDKAPPID"],
            "DESK_SECRET_KEY": environ["TEST_BETA_SECRET_KEY"],
            "DESK_API_URL": environ["TEST_BETA_API_URL"],
        },
        dotenv_path=None,
    )
    apps = []
    for name, settings, label in (("prod", prod, "Production (emulated)"), ("beta", beta, "Beta (emulated)")):
        client = build_desk_client(settings)
        apps.append(DeskApp(name=name, client=client, render=RenderContext(client.sdkappid, "emulator", label)))
    store = DigestStore(connect(prod.database_url.value), apps=[app.name for app in apps])
    service = DigestService(store, apps, build_web_client(prod), DigestSettings.of(prod))
    if "TEST_DIGEST_LEASE" in environ:
        service.lease = float(environ["TEST_DIGEST_LEASE"])
    return service


def worker() -> None:
    """One ticking process: reads an ISO time per line, ticks, answers with the outcomes as JSON.
    With `--due ISO`: one tick at that time, its summary printed, as `python -m bot digest --due`."""
    service = worker_service()
    if sys.argv[1:2] == ["--due"]:
        print(service.tick(datetime.fromisoformat(sys.argv[2])).summary(), flush=True)
        return
    for line in sys.stdin:
        report = service.tick(datetime.fromisoformat(line.strip()))
        outcomes: list[Any] = [[r.channel_id, r.app, r.period, str(r.outcome)] for r in report.results]
        print(json.dumps(outcomes), flush=True)


if __name__ == "__main__":
    worker()
