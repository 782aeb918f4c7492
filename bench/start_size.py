"""Benchmark 5, start and size: process start to /healthz 200, and resident memory per worker.

Start: from launching `python -m bot serve` (which checks the configuration, calls
auth.test, starts gunicorn, and builds the app in the worker) to the first 200 from
/healthz, over several fresh starts. Size: a server with WEB_CONCURRENCY=2 takes
1,000 commands of every kind (8 client connections, each command waited for); then
each worker's resident (RSS) and proportional (PSS, shared pages split between the
processes) memory is read from /proc, and the master's.

First command: in each fresh start, the first `/desk-languages` (a cold cache: Desk is read and
the list rendered, answered through the response_url) is timed from the command to its answer, and
so is the 100th, a `refresh` (the same work: a read and a render), after 98 warm ones; what a
process pays once (imports, tables loaded on first use) shows as the difference.

Targets: start < 1.5 s; RSS < 80 MB per worker after 1,000 commands (PSS beside it); the first
command no slower than the 100th by more than 20 ms (median over the starts).
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.figures import Options, main_for, print_table, print_targets, target
from bench.load import CommandClient, deliveries, wait_for_answers
from bench.processes import (
    EmulatorProcess,
    ServerProcess,
    bot_environment,
    fake_slack,
    memory_kb,
    tracebacks,
    workspace,
)
from bot.desk.client import REFRESH_COALESCE

NAME = "start_size"
TARGET_START_S = 1.5
TARGET_RSS_MB = 80.0
TARGET_FIRST_OVER_HUNDREDTH_MS = 20.0
MIX = ("",) * 10 + ("share", "share", "default", "default", "refresh", "refresh", "help", "help", "lsit", "digest")
WORKERS = 2
FIRST = 100  # memory is read after this many commands too: growth after it would be a leak


def run(options: Options) -> dict[str, Any]:
    starts = 1 if options.smoke else 5
    commands = 50 if options.smoke else 1000
    with workspace(NAME) as work, fake_slack() as fake, EmulatorProcess() as emulator:
        boot_s, first_commands = [], []
        for _ in range(starts):
            with ServerProcess(bot_environment(emulator, fake, work), work) as server:
                boot_s.append(time.monotonic() - server.started_at)
                first_commands.append(_first_and_hundredth(CommandClient(server.port, fake), fake))
        fake.reset()  # the starts' commands are not the size run's
        env = bot_environment(emulator, fake, work, WEB_CONCURRENCY=WORKERS)
        with ServerProcess(env, work) as server:
            time.sleep(0.5)  # every worker has booted, not only the one that answered /healthz
            workers = server.worker_pids()
            at_boot = {pid: memory_kb(pid) for pid in workers}
            chooser = random.Random(5)
            texts = [chooser.choice(MIX) for _ in range(commands)]
            client = CommandClient(server.port, fake)
            first = min(FIRST, commands // 2)
            with ThreadPoolExecutor(max_workers=8) as pool:
                sent = list(pool.map(client.send, texts[:first]))
                time.sleep(0.5)
                early = {pid: memory_kb(pid) for pid in server.worker_pids()}
                sent += pool.map(client.send, texts[first:])
            complete = wait_for_answers(fake, {s.name for s in sent if not s.answered_in_ack}, timeout=20)
            time.sleep(0.5)
            after = {pid: memory_kb(pid) for pid in server.worker_pids()}
            master = memory_kb(server.pid)
            answered = sum(s.answered_in_ack for s in sent) + sum(bool(d.accepted) for d in deliveries(fake).values())
            server.stop()
            log = server.log_text()
    per_worker = [
        {"pid": pid, "rss_mb_at_boot": _mb(at_boot.get(pid, {}).get("rss_kb")),
         "rss_mb_after_first": _mb(early.get(pid, {}).get("rss_kb")), "rss_mb": _mb(m.get("rss_kb")),
         "pss_mb": _mb(m.get("pss_kb"))}
        for pid, m in after.items()
    ]
    largest = max((w["rss_mb"] or 0.0) for w in per_worker) if per_worker else 0.0
    slowest = max(boot_s)
    over = sorted(c["first_ms"] - c["hundredth_ms"] for c in first_commands)
    first_over = round(over[len(over) // 2], 1)
    figures: dict[str, Any] = {
        "settings": {"starts": starts, "commands": commands, "workers": WORKERS, "client_connections": 8,
                     "first_reading_after": first},
        "start_s": {"each": [round(b, 3) for b in boot_s], "median": round(sorted(boot_s)[len(boot_s) // 2], 3),
                    "max": round(slowest, 3)},
        "commands_sent": len(sent),
        "acked_200": sum(s.status == 200 for s in sent),
        "answered": answered,
        "all_answered": complete and answered == len(sent),
        "first_command": {"each": first_commands, "median_first_over_hundredth_ms": first_over},
        "workers": per_worker,
        "master": {"rss_mb": _mb(master.get("rss_kb")), "pss_mb": _mb(master.get("pss_kb"))},
        "tracebacks_in_log": tracebacks(log),
    }
    figures["targets"] = [
        target(f"start to /healthz 200 < {TARGET_START_S:g} s", f"{slowest:.2f} s (slowest of {starts})",
               slowest < TARGET_START_S),
        target(f"RSS per worker after {commands:,} commands < {TARGET_RSS_MB:g} MB", f"{largest:.1f} MB (largest)",
               0 < largest < TARGET_RSS_MB),
        target(f"all {commands:,} commands acked and answered", f"{answered}/{len(sent)}", figures["all_answered"]),
        target(f"the first command no slower than the 100th by more than {TARGET_FIRST_OVER_HUNDREDTH_MS:g} ms",
               f"{first_over:+.1f} ms (median of {starts}; first "
               f"{sorted(c['first_ms'] for c in first_commands)[len(first_commands) // 2]:.1f} ms)",
               first_over <= TARGET_FIRST_OVER_HUNDREDTH_MS),
    ]
    print_table("Start to /healthz, then the first and the 100th command (a read and a render each)",
                ["start", "seconds", "first command ms", "100th (refresh) ms"],
                [[i + 1, round(b, 3), c["first_ms"], c["hundredth_ms"]]
                 for i, (b, c) in enumerate(zip(boot_s, first_commands, strict=True))])
    print_table(
        f"Memory after {commands:,} commands ({WORKERS} workers)",
        ["process", "RSS MB at boot", f"after {first}", f"RSS MB after {commands:,}", "PSS MB"],
        [[f"worker {w['pid']}", w["rss_mb_at_boot"], w["rss_mb_after_first"], w["rss_mb"], w["pss_mb"]]
         for w in per_worker]
        + [["master", None, None, figures["master"]["rss_mb"], figures["master"]["pss_mb"]]],
    )
    print_targets(figures["targets"])
    return figures


def _first_and_hundredth(client: CommandClient, fake: Any) -> dict[str, float]:
    """Milliseconds from command to answer: the first after start (cold cache) and the 100th, a
    `refresh`, after 98 answered from the cache; each reads Desk and renders the list."""
    first = _answer_ms(client, fake, "")
    for _ in range(FIRST - 2):
        client.send("")
    time.sleep(REFRESH_COALESCE + 0.1)  # a refresh sooner than this takes the list just fetched
    return {"first_ms": first, "hundredth_ms": _answer_ms(client, fake, "refresh")}


def _answer_ms(client: CommandClient, fake: Any, text: str) -> float:
    sent = client.send(text)
    if sent.answered_in_ack:
        return round(sent.ack_s * 1000, 1)
    if not wait_for_answers(fake, {sent.name}, timeout=20):
        raise RuntimeError(f"no answer to {text!r}")
    (answer, *_) = fake.responses(sent.name)
    return round((answer.at - sent.sent_at) * 1000, 1)


def _mb(kb: int | None) -> float | None:
    return None if kb is None else round(kb / 1024, 1)


def main(argv: Sequence[str] | None = None) -> int:
    return main_for(NAME, __doc__.splitlines()[0], run, argv)


if __name__ == "__main__":
    sys.exit(main())
