"""Benchmark 3, cold burst: 200 concurrent commands on a freshly started bot (cold cache).

Each client thread opens its connection first; then all 200 send their command at
once. Desk answers each call after DESK_LATENCY_S (an emulator hang that then
answers normally), about a round trip to Tencent's Singapore front end. Counted:
Desk calls (target: 1, the single flight), acks, how each command was answered
(inside its ack, once the cache was warm, or through its response_url), and the
time from the burst until the last of the 200 answers arrived. Three rounds, each
on a fresh server.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from bench.figures import Options, main_for, print_table, print_targets, spread_ms, target
from bench.load import CommandClient, deliveries, send_burst, wait_for_answers
from bench.processes import EmulatorProcess, ServerProcess, bot_environment, fake_slack, tracebacks, workspace

NAME = "cold_burst"
DESK_LATENCY_S = 0.3


def run(options: Options) -> dict[str, Any]:
    size = 20 if options.smoke else 200
    rounds = 1 if options.smoke else 3
    results: list[dict[str, Any]] = []
    with workspace(NAME) as work, fake_slack() as fake, EmulatorProcess() as emulator:
        for number in range(1, rounds + 1):
            fake.reset()
            emulator.reset_calls()
            emulator.inject(times=-1, hang=DESK_LATENCY_S)
            env = bot_environment(emulator, fake, work)
            with ServerProcess(env, work) as server:
                client = CommandClient(server.port, fake, timeout=15)
                released, sent = send_burst(client, [""] * size)
                via_url = {s.name for s in sent if s.status == 200 and not s.answered_in_ack}
                complete = wait_for_answers(fake, via_url, timeout=15)
                got = deliveries(fake)
                calls = emulator.calls()
                server.stop()
                log = server.log_text()
            emulator.clear_faults()
            answer_at: list[float] = []
            for one in sent:
                if one.answered_in_ack:
                    answer_at.append(one.sent_at + one.ack_s)
                elif (delivery := got.get(one.name)) is not None and delivery.accepted:
                    answer_at.append(delivery.accepted[0].at)
            results.append(
                {
                    "round": number,
                    "commands": size,
                    "desk_calls": len(calls),
                    "acked_200": sum(s.status == 200 for s in sent),
                    "ack": spread_ms([s.ack_s for s in sent if s.status]),
                    "answered_in_ack": sum(s.answered_in_ack for s in sent),
                    "answered_via_response_url": sum(bool(d.accepted) for d in got.values()),
                    "answered": len(answer_at),
                    "complete": complete and len(answer_at) == size,
                    "more_than_one_answer": sum(len(d.accepted) > 1 for d in got.values()),
                    "all_answered_after_ms": round((max(answer_at) - released) * 1000, 1) if answer_at else None,
                    "answer_after": spread_ms([at - released for at in answer_at]),
                    "tracebacks_in_log": tracebacks(log),
                }
            )
            print(f"  round {number}: {results[-1]['desk_calls']} Desk call(s), all answered after "
                  f"{results[-1]['all_answered_after_ms']} ms", flush=True)
    most_calls = max(r["desk_calls"] for r in results)
    slowest = max(r["all_answered_after_ms"] or 0.0 for r in results)
    targets = [
        target("1 upstream call per burst", f"{most_calls} (most in a round)", most_calls == 1),
        target(
            f"all {size} acked and answered exactly once",
            f"{min(r['answered'] for r in results)}/{size} (fewest in a round)",
            all(r["complete"] and r["acked_200"] == size and not r["more_than_one_answer"] for r in results),
        ),
    ]
    figures = {
        "settings": {
            "commands_per_burst": size,
            "rounds": rounds,
            "desk_latency_s": DESK_LATENCY_S,
            "gunicorn": "1 worker x 16 gthreads",
        },
        "rounds": results,
        "slowest_all_answered_ms": slowest,
        "targets": targets,
    }
    print_table(
        f"Cold burst ({size} concurrent commands, Desk answers in {DESK_LATENCY_S * 1000:.0f} ms)",
        ["round", "Desk calls", "acked", "ack p99 ms", "in ack", "via response_url", "all answered after ms"],
        [
            [r["round"], r["desk_calls"], r["acked_200"], r["ack"]["p99_ms"], r["answered_in_ack"],
             r["answered_via_response_url"], r["all_answered_after_ms"]]
            for r in results
        ],
    )
    print_targets(targets)
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    return main_for(NAME, __doc__.splitlines()[0], run, argv)


if __name__ == "__main__":
    sys.exit(main())
