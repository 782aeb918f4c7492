"""Benchmark 9, change alerts under load: 3 bot processes, 2 Desk apps, 50 watching channels, a change every ~20 s.

Three `python -m bot serve` processes (granian, each with its in-process watch ticker, as
production runs them) share one database: a throwaway PostgreSQL when `initdb`/`pg_ctl` and
psycopg are installed (tests/support/services.py), else one SQLite file; the figures say which.
Two Desk apps (DESK_APPS=prod,staging), each its own emulator process (`python -m bot sandbox
--app-index N`: its own SDKAppID and key). DESK_WATCH_INTERVAL=10, DESK_CACHE_TTL at its
default (300 s). 50 channels watch both apps, set up with signed `/desk-languages APP watch`
commands sent to the three processes in turn. Once every app has been polled once, a change
thread replaces both apps' languages (the emulators' control API) at once every 15-25 s
(the first after 3 s) for 2 minutes; then the run waits for the last alerts.

Counted at the emulators: list calls per app in each interval slot (`at // 10`), target at
most 1. At FakeSlack: alerts posted (chat.postMessage with the watch metadata), per change,
channel and app, target exactly 1 for every change x 50 channels (each alert is matched to the
latest change of its app made before it arrived; changes are farther apart than an interval
plus the latency). Latency from the change at the emulator (the control call's return) to the
alert's arrival at FakeSlack: p50 and max, target max <= interval + 5 s.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from bench.figures import Options, main_for, percentile, print_table, print_targets, target
from bench.load import CommandClient, wait_for_answers
from bench.processes import (
    EmulatorProcess,
    bot_environment,
    fake_slack,
    release_phase,
    servers,
    tracebacks,
    workspace,
)
from bot.sandbox.slack_emulator import FakeSlack
from bot.watch.service import EVENT_TYPE
from tests.support.environment import pg_tool
from tests.support.services import PostgresServer, PostgresUnavailable

NAME = "watch_load"
APPS = ("prod", "staging")
INTERVAL = 10.0
LATENCY_MARGIN = 5.0  # target: an alert within an interval plus this
GAP = (15.0, 25.0)  # seconds between two changes
FIRST_GAP = 3.0
# Each app cycles through these; neighbours differ, so every step is a change.
LISTS = (
    [("en", 1), ("ja", 0)],
    [("en", 1), ("ja", 0), ("vi", 0)],
    [("en", 1), ("vi", 0)],
    [("vi", 1), ("en", 0)],
    [("vi", 1), ("en", 0), ("zh", 0)],
    [("en", 1), ("zh", 0)],
)


def run(options: Options) -> dict[str, Any]:
    processes, channels, duration = (2, 3, 20.0) if options.smoke else (3, 50, 120.0)
    rng = random.Random(14)
    with workspace(NAME) as work, fake_slack() as fake, ExitStack() as stack:
        emulators = {name: stack.enter_context(EmulatorProcess(index)) for index, name in enumerate(APPS)}
        database, database_url = stack.enter_context(_database(work))
        env = _env(emulators, fake, work, database_url)
        release_phase(env, work)
        with servers(processes, env, work) as running:
            clients = [CommandClient(server.port, fake) for server in running]
            channel_ids = [f"C0WATCH{number:03d}" for number in range(channels)]
            setup = _watch_all(clients, fake, channel_ids)
            _wait_first_polls(emulators, timeout=3 * INTERVAL)
            for emulator in emulators.values():
                emulator.reset_calls()
            fake.reset()
            measured_from = time.time()
            changes = _change(emulators, rng, duration)
            expected = len(changes) * channels
            deadline = (changes[-1]["at"] if changes else time.time()) + INTERVAL + 3 * LATENCY_MARGIN
            fake.wait_for(lambda f: len(_alerts(f)) >= expected, timeout=max(0.0, deadline - time.time()))
            time.sleep(2.0)  # a second alert for any change would have had the time to arrive
            measured_until = time.time()
            calls = {name: emulator.calls() for name, emulator in emulators.items()}
            alerts = _alerts(fake)
            for server in running:
                server.stop()
            logs = "".join(server.log_text() for server in running)
    figures = _figures(changes, alerts, calls, channel_ids, measured_from, measured_until)
    figures["settings"] = {
        "processes": processes, "apps": list(APPS), "channels": channels, "interval_s": INTERVAL,
        "duration_s": duration, "gap_s": list(GAP), "database": database, "watch_commands_answered": setup,
    }
    figures["tracebacks_in_log"] = tracebacks(logs)
    figures["targets"] = _targets(figures)
    _print(figures)
    return figures


@contextmanager
def _database(work: Path) -> Iterator[tuple[str, str]]:
    """PostgreSQL when it can be started here, else a SQLite file: (which, URL)."""
    initdb, pg_ctl = pg_tool("initdb"), pg_tool("pg_ctl")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        initdb = None
    if initdb is not None and pg_ctl is not None:
        server = PostgresServer(initdb, pg_ctl)
        try:
            server.start()
        except (PostgresUnavailable, RuntimeError) as error:
            print(f"PostgreSQL could not start ({error}); using SQLite", flush=True)
        else:
            try:
                yield "PostgreSQL", server.url
            finally:
                server.stop()
            return
    yield "SQLite (one file)", f"sqlite:///{work / 'watch.db'}"


def _env(emulators: dict[str, EmulatorProcess], fake: FakeSlack, work: Path, database_url: str) -> dict[str, str]:
    env = bot_environment(emulators[APPS[0]], fake, work, DATABASE_URL=database_url, DIGEST_TICKER=1,
                          DESK_WATCH_INTERVAL=INTERVAL)
    for variable in ("DESK_SDKAPPID", "DESK_SECRET_KEY", "DESK_API_URL"):  # the apps bring their own
        env.pop(variable, None)
    env["DESK_APPS"] = ",".join(APPS)
    for name, emulator in emulators.items():
        prefix = f"DESK_{name.upper()}_"
        env[f"{prefix}SDKAPPID"] = str(emulator.sdkappid)
        env[f"{prefix}SECRET_KEY"] = emulator.key
        env[f"{prefix}API_URL"] = emulator.base_url
    return env


def _watch_all(clients: Sequence[CommandClient], fake: FakeSlack, channel_ids: Sequence[str]) -> int:
    """`/desk-languages APP watch` from every channel for every app, to the processes in turn."""
    names, answered = set(), 0
    for index, (channel, app) in enumerate((c, a) for c in channel_ids for a in APPS):
        sent = clients[index % len(clients)].send(f"{app} watch", channel_id=channel, user_id="U0BENCH")
        if sent.status == 200 and not sent.answered_in_ack:
            names.add(sent.name)
        answered += b"will get an alert" in sent.body
    wait_for_answers(fake, names, timeout=30)
    answered += sum("will get an alert" in str(call.body) for call in fake.calls("response_url"))
    if answered != len(channel_ids) * len(APPS):
        raise RuntimeError(f"only {answered} of {len(channel_ids) * len(APPS)} watch commands were answered")
    return answered


def _wait_first_polls(emulators: dict[str, EmulatorProcess], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(emulator.calls() for emulator in emulators.values()):
            time.sleep(1.0)  # the poll's comparison and its state write
            return
        time.sleep(0.2)
    raise RuntimeError("the apps were not polled")


def _change(emulators: dict[str, EmulatorProcess], rng: random.Random, duration: float) -> list[dict[str, Any]]:
    """The change thread's work, in this thread: both apps get their next list every 15-25 s."""
    started = time.time()
    changes: list[dict[str, Any]] = []
    step, gap = 1, FIRST_GAP
    latest_change = started + duration - INTERVAL - LATENCY_MARGIN  # the last one still has time to alert
    done = threading.Event()
    while time.time() + gap <= latest_change or not changes:
        done.wait(gap)
        for index, (name, emulator) in enumerate(emulators.items()):
            languages = LISTS[(step + index) % len(LISTS)]
            emulator.set_languages(languages)
            changes.append({"app": name, "step": step, "at": time.time(), "languages": [t for t, _ in languages]})
        step, gap = step + 1, rng.uniform(*GAP)
    return changes


def _alerts(fake: FakeSlack) -> list[dict[str, Any]]:
    found = []
    for call in fake.calls("chat.postMessage"):
        metadata = call.body.get("metadata") or {}
        if call.status == 200 and isinstance(metadata, dict) and metadata.get("event_type") == EVENT_TYPE:
            payload = metadata.get("event_payload") or {}
            found.append({"at": call.at, "channel": call.body.get("channel"), "app": payload.get("app"),
                          "change": payload.get("change")})
    return found


def _figures(changes: list[dict[str, Any]], alerts: list[dict[str, Any]], calls: dict[str, list[dict[str, Any]]],
             channel_ids: Sequence[str], since: float, until: float) -> dict[str, Any]:
    per_slot = {name: Counter(int(c["at"] // INTERVAL) for c in app_calls) for name, app_calls in calls.items()}
    first_slot, last_slot = int(since // INTERVAL), int(until // INTERVAL)
    slots = last_slot - first_slot + 1
    counts: Counter[tuple[str, str, int]] = Counter()
    latencies: list[float] = []
    unmatched = 0
    for alert in alerts:
        made = [c for c in changes if c["app"] == alert["app"] and c["at"] <= alert["at"]]
        if not made:
            unmatched += 1
            continue
        change = made[-1]
        counts[(alert["channel"], alert["app"], change["step"])] += 1
        latencies.append(alert["at"] - change["at"])
    expected = [(channel, c["app"], c["step"]) for c in changes for channel in channel_ids]
    exactly_once = sum(counts.get(key) == 1 for key in expected)
    return {
        "changes": changes,
        "desk_calls": {name: len(app_calls) for name, app_calls in calls.items()},
        "interval_slots": slots,
        "max_desk_calls_per_slot": {name: max(counter.values(), default=0) for name, counter in per_slot.items()},
        "alerts_posted": len(alerts),
        "alerts_expected": len(expected),
        "alerts_exactly_once": exactly_once,
        "alerts_missing": sum(key not in counts for key in expected),
        "alerts_duplicated": sum(n - 1 for n in counts.values() if n > 1),
        "alerts_unmatched": unmatched,
        "distinct_change_ids": len({(a["app"], a["change"]) for a in alerts}),
        "latency_s": {
            "p50": _round(percentile(latencies, 50)),
            "p99": _round(percentile(latencies, 99)),
            "max": _round(max(latencies) if latencies else None),
        },
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _targets(f: dict[str, Any]) -> list[dict[str, Any]]:
    calls = f["max_desk_calls_per_slot"]
    latency = f["latency_s"]["max"]
    budget = INTERVAL + LATENCY_MARGIN
    return [
        target("Desk list calls per app per interval <= 1",
               ", ".join(f"{app}: at most {n}" for app, n in calls.items()), all(n <= 1 for n in calls.values())),
        target(f"exactly 1 alert per change per channel ({len(f['changes'])} changes x "
               f"{f['alerts_expected'] // max(1, len(f['changes']))} channels)",
               f"{f['alerts_exactly_once']}/{f['alerts_expected']} (missing {f['alerts_missing']}, "
               f"duplicated {f['alerts_duplicated']})",
               f["alerts_exactly_once"] == f["alerts_expected"] > 0 and f["alerts_duplicated"] == 0
               and f["alerts_unmatched"] == 0),
        target(f"change at Desk to alert in Slack <= {budget:g} s (max)",
               f"p50 {f['latency_s']['p50']} s, max {latency} s", latency is not None and latency <= budget),
    ]


def _print(f: dict[str, Any]) -> None:
    s = f["settings"]
    print_table(
        f"Change alerts: {s['processes']} processes, {len(s['apps'])} apps, {s['channels']} channels, "
        f"interval {s['interval_s']:g} s, {s['database']}",
        ["changes", "Desk calls", "slots", "max calls/slot", "alerts", "exactly once", "latency p50 s", "max s"],
        [[len(f["changes"]), sum(f["desk_calls"].values()), f["interval_slots"],
          max(f["max_desk_calls_per_slot"].values(), default=0), f["alerts_posted"],
          f"{f['alerts_exactly_once']}/{f['alerts_expected']}", f["latency_s"]["p50"], f["latency_s"]["max"]]],
    )
    print_targets(f["targets"])


def main(argv: Sequence[str] | None = None) -> int:
    return main_for(NAME, __doc__.splitlines()[0], run, argv)


if __name__ == "__main__":
    sys.exit(main())
