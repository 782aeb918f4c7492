"""Benchmark 1, the ack path: the bot under gunicorn next to three references, driven by wrk.

wrk sends one signed `/desk-languages` command (no option: the list) over 2, 10 and
50 keep-alive connections. The bot's cache is warm, so every ack carries the whole
Block Kit answer (checked before and after the runs). In the same run, with the same
gunicorn settings (`bot.serve.gunicorn_options`: 1 worker x 16 gthreads), the
references of bench/baselines.py: (a) bare Bolt, defaults; (b) bare Bolt,
`process_before_response=True`; (c) the floor, signature check + form parse, no Bolt.

Targets: the bot >= 3x (a) and >= 0.7x (c) in requests/s, p50 < 2 ms at 2 connections.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.harness import (
    CommandClient,
    EmulatorProcess,
    Options,
    ServerProcess,
    bot_environment,
    fake_slack,
    main_for,
    print_table,
    print_targets,
    run_wrk,
    wait_for_answers,
    workspace,
)
from bot.slack_sandbox import slash_command_body

NAME = "ack_path"
APPS = ("bot", "bolt-default", "bolt-pbr", "plain")
LABELS = {
    "bot": "desk-languages-bot (answer in the ack)",
    "bolt-default": "(a) bare Bolt, defaults, ack() only",
    "bolt-pbr": "(b) bare Bolt, process_before_response=True",
    "plain": "(c) plain WSGI: verify, parse, 200",
}
TARGET_VS_BOLT_DEFAULT = 3.0
TARGET_VS_PLAIN = 0.7
TARGET_P50_MS_AT_2 = 2.0


def run(options: Options) -> dict[str, Any]:
    connections: Sequence[int] = (2,) if options.smoke else (2, 10, 50)
    rounds = 1 if options.smoke else 2
    duration = 1.0 if options.smoke else 5.0
    warmup = 0.0 if options.smoke else 2.0
    every_run: dict[str, list[dict[str, Any]]] = {app: [] for app in APPS}
    checks: dict[str, Any] = {"load_average_before": _load_average()}
    with workspace(NAME) as work, fake_slack() as fake, EmulatorProcess() as emulator, ExitStack() as stack:
        # All four servers run side by side (idle ones cost nothing) and the runs are
        # interleaved, so a change in background load hits every app alike.
        env = bot_environment(emulator, fake, work, DESK_CACHE_TTL=3600)
        running: dict[str, ServerProcess] = {}
        for app in APPS:
            command = None if app == "bot" else [sys.executable, "-m", "bench.baselines", app]
            running[app] = ServerProcess(env, work, command)
            stack.callback(running[app].stop)
            running[app].launch()
        for server in running.values():
            server.wait_ready()
        checks.update(_warm_the_cache(running["bot"], fake))
        bodies = {app: slash_command_body("", response_url=fake.response_url(f"wrk-{app}")) for app in APPS}
        for app in APPS if warmup else ():
            run_wrk(running[app].port, bodies[app], connections=10, duration=warmup, workdir=work)
        emulator.reset_calls()
        fake.reset()
        for round_ in range(1, rounds + 1):
            for count in connections:
                for app in APPS:
                    port = running[app].port
                    figures = run_wrk(port, bodies[app], connections=count, duration=duration, workdir=work)
                    every_run[app].append({"round": round_, **figures})
                    print(f"  round {round_} {app:<13} {count:>2} conns: {figures['rps']:>8,.0f} req/s", flush=True)
        checks["upstream_calls_during_runs"] = len(emulator.calls())
        checks["response_url_posts_during_runs"] = len(fake.responses())
        checks["answer_in_ack_after_runs"] = CommandClient(running["bot"].port, fake).send("").answered_in_ack
        checks["load_average_after"] = _load_average()
    runs = {app: [_best(every_run[app], count) for count in connections] for app in APPS}
    comparisons = _compare(runs, connections)
    targets = _targets(runs, comparisons)
    figures = {
        "settings": {
            "gunicorn": "1 worker x 16 gthreads (bot.serve.gunicorn_options), keep-alive 5 s",
            "load": "wrk, 1 thread, keep-alive, one fixed signed command",
            "seconds_per_run": duration,
            "rounds": rounds,
            "reported": "per app and connection count, the round with the most requests/s",
            "warmup_seconds": warmup,
        },
        "labels": LABELS,
        "runs": runs,
        "every_run": every_run,
        "checks": checks,
        "comparisons": comparisons,
        "targets": targets,
    }
    _print(runs, comparisons, targets, checks)
    return figures


def _best(runs: list[dict[str, Any]], connections: int) -> dict[str, Any]:
    """The least disturbed of the rounds: the one with the most requests/s."""
    return max((r for r in runs if r["connections"] == connections), key=lambda r: r["rps"])


def _load_average() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _warm_the_cache(server: ServerProcess, fake: Any) -> dict[str, Any]:
    """One command fills the cache (answered through response_url); the next is answered in its ack."""
    client = CommandClient(server.port, fake)
    first = client.send("")
    if not wait_for_answers(fake, {first.name}, timeout=10):
        raise RuntimeError("the bot did not answer the warm-up command")
    second = client.send("")
    if not second.answered_in_ack or b"Desk chatbot languages" not in second.body:
        raise RuntimeError("with a warm cache the ack does not carry the list")
    return {
        "warmup_answered_via_response_url": not first.answered_in_ack,
        "answer_in_ack_before_runs": True,
        "ack_body_bytes": len(second.body),
    }


def _compare(runs: dict[str, list[dict[str, Any]]], connections: Sequence[int]) -> list[dict[str, Any]]:
    rows = []
    for index, count in enumerate(connections):
        bot = runs["bot"][index]["rps"]
        rows.append(
            {
                "connections": count,
                "bot_rps": bot,
                "vs_bolt_default": round(bot / runs["bolt-default"][index]["rps"], 2),
                "vs_bolt_pbr": round(bot / runs["bolt-pbr"][index]["rps"], 2),
                "vs_plain": round(bot / runs["plain"][index]["rps"], 2),
            }
        )
    return rows


def _targets(runs: dict[str, list[dict[str, Any]]], comparisons: list[dict[str, Any]]) -> list[dict[str, Any]]:
    worst_a = min(row["vs_bolt_default"] for row in comparisons)
    worst_c = min(row["vs_plain"] for row in comparisons)
    p50_at_2 = next(r["p50_ms"] for r in runs["bot"] if r["connections"] == 2)
    errors = sum(r["errors"] for rs in runs.values() for r in rs)
    return [
        {
            "target": f">= {TARGET_VS_BOLT_DEFAULT:g}x reference (a) req/s, at every connection count",
            "measured": f"{worst_a:.2f}x (lowest)",
            "met": worst_a >= TARGET_VS_BOLT_DEFAULT,
        },
        {
            "target": f">= {TARGET_VS_PLAIN:g}x the floor (c) req/s, at every connection count",
            "measured": f"{worst_c:.2f}x (lowest)",
            "met": worst_c >= TARGET_VS_PLAIN,
        },
        {
            "target": f"p50 < {TARGET_P50_MS_AT_2:g} ms at 2 connections",
            "measured": f"{p50_at_2:.2f} ms",
            "met": p50_at_2 < TARGET_P50_MS_AT_2,
        },
        {"target": "no errors or non-2xx answers in any run", "measured": str(errors), "met": errors == 0},
    ]


def _print(runs: dict[str, list[dict[str, Any]]], comparisons: list[dict[str, Any]], targets: Any, checks: Any) -> None:
    rows = [
        [LABELS[app], r["connections"], r["rps"], r["p50_ms"], r["p99_ms"], r["errors"]]
        for app, rs in runs.items()
        for r in rs
    ]
    print_table("Ack path (wrk, keep-alive)", ["app", "conns", "req/s", "p50 ms", "p99 ms", "errors"], rows)
    print_table(
        "The bot relative to the references",
        ["conns", "bot req/s", "x (a)", "x (b)", "x (c)"],
        [[c["connections"], c["bot_rps"], c["vs_bolt_default"], c["vs_bolt_pbr"], c["vs_plain"]] for c in comparisons],
    )
    print_targets(targets)
    print(f"\nchecks: {checks}")


def main(argv: Sequence[str] | None = None) -> int:
    return main_for(NAME, __doc__.splitlines()[0], run, argv)


if __name__ == "__main__":
    sys.exit(main())
