"""Benchmark 4, refresh storm: 300 `refresh` commands within 10 s, from 1 process and from 3 sharing Redis.

`refresh` bypasses the cache, so without coalescing every one of them would be a
Desk call, far over Tencent's 5 calls/s. Measured at the emulator: Desk calls, the
most in any one-second window (target <= 5), and -14 ("over the limit") answers;
measured at FakeSlack: what each user got, and how many saw a -14 (target 0).

Variants, each on fresh servers with one warm-up command per process first:
- `1 process`: one gunicorn worker, in-process limiter and cache (the default);
- `3 processes + Redis`: three servers (as three dynos) sharing REDIS_URL, commands in turn;
- `3 processes, no Redis`: the same without REDIS_URL, for contrast (no target).
"""

from __future__ import annotations

import re
import shutil
import sys
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from bench.figures import Options, main_for, print_table, print_targets, spread_ms, target
from bench.load import CommandClient, deliveries, message_text, send_at_rate, wait_for_answers
from bench.processes import EmulatorProcess, bot_environment, fake_slack, servers, tracebacks, workspace
from bot.sandbox.desk_emulator import max_in_window
from tests.support.services import RedisServer

NAME = "refresh_storm"
TARGET_MAX_PER_SECOND = 5
_ERROR_CODE = re.compile(r"\*Error\* `([^`]+)`")


@dataclass(frozen=True)
class Variant:
    name: str
    processes: int
    redis: bool
    has_target: bool = True


VARIANTS = (
    Variant("1 process", 1, False),
    Variant("3 processes + Redis", 3, True),
    Variant("3 processes, no Redis", 3, False, has_target=False),
)


def run(options: Options) -> dict[str, Any]:
    count, seconds = (30, 2.0) if options.smoke else (300, 10.0)
    variants: tuple[Variant, ...] = VARIANTS[:2] if options.smoke else VARIANTS
    if shutil.which("redis-server") is None:
        print("redis-server is not installed: the Redis variant is skipped (apt-get install redis-server)")
        variants = tuple(v for v in variants if not v.redis)
    results: list[dict[str, Any]] = []
    with workspace(NAME) as work, fake_slack() as fake, EmulatorProcess() as emulator, ExitStack() as stack:
        binary = shutil.which("redis-server") or "redis-server"
        redis = stack.enter_context(RedisServer(binary)) if any(v.redis for v in variants) else None
        for variant in variants:
            results.append(_one(variant, count, seconds, emulator, fake, redis, work))
            print(f"  {variant.name}: {results[-1]['desk_calls']} Desk calls, "
                  f"at most {results[-1]['max_desk_calls_in_1s']} in 1 s", flush=True)
    targets = []
    for r in results:
        if not r["has_target"]:
            continue
        targets.append(target(f"{r['variant']}: <= {TARGET_MAX_PER_SECOND} Desk calls in any 1 s",
                              str(r["max_desk_calls_in_1s"]), r["max_desk_calls_in_1s"] <= TARGET_MAX_PER_SECOND))
        targets.append(target(f"{r['variant']}: no user sees a -14", str(r["users_saw_minus_14"]),
                              r["users_saw_minus_14"] == 0))
        targets.append(target(f"{r['variant']}: every refresh acked and answered once",
                              f"{r['answered']}/{r['commands']}",
                              r["answered"] == r["commands"] == r["acked_200"] and not r["more_than_one_answer"]))
    figures = {
        "settings": {"commands": count, "seconds": seconds, "rate_per_s": count / seconds, "desk_rate_limit": 5},
        "variants": results,
        "targets": targets,
    }
    print_table(
        f"Refresh storm ({count} refresh commands in {seconds:g} s)",
        ["variant", "Desk calls", "max in 1 s", "Desk -14s", "users saw -14", "answered", "reply p50 ms",
         "reply max ms", "replies"],
        [
            [r["variant"], r["desk_calls"], r["max_desk_calls_in_1s"], r["desk_minus_14"], r["users_saw_minus_14"],
             r["answered"], r["reply"]["p50_ms"], r["reply"]["max_ms"], _kinds(r["reply_kinds"])]
            for r in results
        ],
    )
    print_targets(targets)
    return figures


def _one(
    variant: Variant, count: int, seconds: float, emulator: EmulatorProcess, fake: Any, redis: RedisServer | None,
    work: Any,
) -> dict[str, Any]:
    extra: dict[str, str] = {}
    if variant.redis:
        assert redis is not None
        redis.flushall()
        extra["REDIS_URL"] = redis.url
    env = bot_environment(emulator, fake, work, **extra)
    with servers(variant.processes, env, work) as running:
        clients = [CommandClient(server.port, fake) for server in running]
        warmups = [client.send("") for client in clients]
        wait_for_answers(fake, {w.name for w in warmups if not w.answered_in_ack}, timeout=10)
        emulator.reset_calls()
        fake.reset()
        sent = send_at_rate(clients, ["refresh"] * count, count / seconds, threads=32)
        wait_for_answers(fake, {s.name for s in sent}, timeout=15)
        got = deliveries(fake)
        calls = emulator.calls()
        for server in running:
            server.stop()
        logs = "".join(server.log_text() for server in running)
    kinds: Counter[str] = Counter()
    reply_s = []
    saw_minus_14 = 0
    for one in sent:
        delivery = got.get(one.name)
        if delivery is None or not delivery.accepted:
            continue
        text = message_text(delivery.accepted[0].body)
        reply_s.append(delivery.accepted[0].at - one.sent_at)
        code = _ERROR_CODE.search(text)
        stale = "showing the list from" in text
        kinds["list" if code is None else f"{'stale list, ' if stale else 'error '}{code.group(1)}"] += 1
        saw_minus_14 += code is not None and code.group(1) == "-14"
    return {
        "variant": variant.name,
        "processes": variant.processes,
        "redis": variant.redis,
        "has_target": variant.has_target,
        "commands": len(sent),
        "acked_200": sum(s.status == 200 for s in sent),
        "answered": len(reply_s),
        "more_than_one_answer": sum(len(d.accepted) > 1 for d in got.values()),
        "reply": spread_ms(reply_s),
        "reply_kinds": dict(kinds),
        "users_saw_minus_14": saw_minus_14,
        "desk_calls": len(calls),
        "max_desk_calls_in_1s": max_in_window([c["at"] for c in calls], 1.0),
        "desk_outcomes": dict(Counter(str(c["outcome"]) for c in calls)),
        "desk_minus_14": sum(c["outcome"] == -14 for c in calls),
        "tracebacks_in_log": tracebacks(logs),
    }


def _kinds(kinds: dict[str, int]) -> str:
    return ", ".join(f"{name} {number}" for name, number in sorted(kinds.items(), key=lambda kv: -kv[1]))


def main(argv: Sequence[str] | None = None) -> int:
    return main_for(NAME, __doc__.splitlines()[0], run, argv)


if __name__ == "__main__":
    sys.exit(main())
