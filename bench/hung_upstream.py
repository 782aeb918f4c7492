"""Benchmark 2, hung upstream: every Desk call hangs; acks stay fast and every command gets its error reply.

The emulator holds every Desk call far longer than DESK_TIMEOUT, on a cold cache, so
every command needs Desk and ends in a `read-timeout` reply through its response_url.
Commands arrive open-loop at a steady rate; each ack is timed by the client, each
reply from the moment its command left until it reached FakeSlack's catcher.

Scenarios (each on a fresh server):
- `list`: the ack-path command (list, plus some `default` and `share`), 50/s;
- `refresh-10%`: the same with one command in ten a `refresh` (people retry), 50/s;
- `refresh-10%-slow`: that mix at 10/s.

Targets: ack p99 < 100 ms; every command answered within DESK_TIMEOUT + 1 s.
"""

from __future__ import annotations

import random
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.figures import Options, main_for, print_table, print_targets, spread_ms, target
from bench.load import CommandClient, deliveries, message_text, send_at_rate, wait_for_answers
from bench.processes import (
    EmulatorProcess,
    ServerProcess,
    bot_environment,
    fake_slack,
    fresh_round,
    tracebacks,
    workspace,
)
from bot.sandbox.slack_emulator import FakeSlack

NAME = "hung_upstream"
TARGET_ACK_P99_MS = 100.0
HANG_S = 60.0  # longer than any timeout: the call never answers in time


@dataclass(frozen=True)
class Scenario:
    name: str
    mix: tuple[str, ...]
    rate: float  # commands per second


LIST = ("",) * 8 + ("default", "share")
WITH_REFRESH = ("",) * 7 + ("default", "share", "refresh")
SCENARIOS = (
    Scenario("list", LIST, 50.0),
    Scenario("refresh-10%", WITH_REFRESH, 50.0),
    Scenario("refresh-10%-slow", WITH_REFRESH, 10.0),
)


def run(options: Options) -> dict[str, Any]:
    desk_timeout = 0.5 if options.smoke else 2.0
    seconds = 1.5 if options.smoke else 12.0
    scenarios = SCENARIOS[1:2] if options.smoke else SCENARIOS
    results = []
    with workspace(NAME) as work, fake_slack() as fake, EmulatorProcess() as emulator:
        for scenario in scenarios:
            fresh_round(fake, emulator)
            emulator.inject(times=-1, hang=HANG_S)
            rate = scenario.rate * (0.4 if options.smoke else 1.0)
            results.append(_one(scenario, rate, seconds, desk_timeout, emulator, fake, work))
            emulator.clear_faults()
    acks_ok = all(r["acked_200"] == r["commands"] for r in results)
    worst_ack = max(r["ack"]["p99_ms"] or 0.0 for r in results)
    targets = [target(f"ack p99 < {TARGET_ACK_P99_MS:g} ms, every command acked", f"{worst_ack:.1f} ms (worst)",
                      worst_ack < TARGET_ACK_P99_MS and acks_ok)]
    for r in results:
        targets.append(
            target(
                f"{r['scenario']}: every command answered within DESK_TIMEOUT + 1 s = {desk_timeout + 1:g} s",
                f"{r['answered_in_time']}/{r['commands']} (slowest {r['reply']['max_ms'] or 0:,.0f} ms)",
                r["answered_in_time"] == r["commands"],
            )
        )
    figures = {
        "settings": {
            "desk_timeout_s": desk_timeout,
            "seconds_per_scenario": seconds,
            "desk": f"every call hangs {HANG_S:g} s",
            "lazy_threads": 32,
        },
        "scenarios": results,
        "targets": targets,
    }
    _print(results, targets)
    return figures


def _one(
    scenario: Scenario, rate: float, seconds: float, desk_timeout: float, emulator: EmulatorProcess, fake: FakeSlack,
    work: Any,
) -> dict[str, Any]:
    chooser = random.Random(6)
    texts = [chooser.choice(scenario.mix) for _ in range(int(rate * seconds))]
    env = bot_environment(emulator, fake, work, DESK_TIMEOUT=desk_timeout)
    with ServerProcess(env, work) as server:
        sent = send_at_rate(CommandClient(server.port, fake), texts, rate, threads=32)
        wait_for_answers(fake, {s.name for s in sent}, timeout=desk_timeout + 8)
        got = deliveries(fake)
        desk_calls = emulator.calls()
        server.stop()
        log = server.log_text()
    reply_s: list[float] = []
    kinds: Counter[str] = Counter()
    for one in sent:
        delivery = got.get(one.name)
        if delivery is not None and delivery.accepted:
            reply_s.append(delivery.accepted[0].at - one.sent_at)
            kinds[_reply_kind(delivery.accepted[0].body)] += 1
    first_call = min((c["at"] for c in desk_calls), default=0.0)
    return {
        "scenario": scenario.name,
        "rate_per_s": rate,
        "mix": dict(Counter(t or "list" for t in scenario.mix)),
        "commands": len(sent),
        "acked_200": sum(s.status == 200 for s in sent),
        "ack": spread_ms([s.ack_s for s in sent if s.status]),
        "answered": len(reply_s),
        "answered_in_time": sum(r <= desk_timeout + 1.0 for r in reply_s),
        "reply": spread_ms(reply_s),
        "reply_kinds": dict(kinds),
        "more_than_one_answer": sum(len(d.accepted) > 1 for d in got.values()),
        "desk_calls": len(desk_calls),
        "desk_call_times_s": [round(c["at"] - first_call, 2) for c in desk_calls],
        "tracebacks_in_log": tracebacks(log),
    }


def _reply_kind(body: dict[str, Any]) -> str:
    """What the user saw: the error code named in the reply, or "list"."""
    text = message_text(body)
    for code in ("read-timeout", "local-rate-limit", "connect-timeout", "connection-failed"):
        if f"`{code}`" in text:
            return code
    return "list" if "Desk chatbot languages" in text else "other"


def _print(results: list[dict[str, Any]], targets: list[dict[str, Any]]) -> None:
    print_table(
        "Hung upstream (every Desk call hangs; cold cache)",
        ["scenario", "rate/s", "commands", "acked", "ack p50 ms", "ack p99 ms", "answered", "in time",
         "reply p50 ms", "reply max ms", "Desk calls"],
        [
            [r["scenario"], r["rate_per_s"], r["commands"], r["acked_200"], r["ack"]["p50_ms"], r["ack"]["p99_ms"],
             r["answered"], r["answered_in_time"], r["reply"]["p50_ms"], r["reply"]["max_ms"], r["desk_calls"]]
            for r in results
        ],
    )
    print_targets(targets)


def main(argv: Sequence[str] | None = None) -> int:
    return main_for(NAME, __doc__.splitlines()[0], run, argv)


if __name__ == "__main__":
    sys.exit(main())
