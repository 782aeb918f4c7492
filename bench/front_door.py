"""Benchmark 7, the front door: hostile traffic at `/slack/events` costs the bot little.

Against the bot under its own server (`python -m bot serve`, granian, 1 worker, a warm
cache), one part after the other:
- pathological bodies: unsigned POSTs of 64 KiB, 256 KiB and 1 MiB (the largest the
  edge reads) in four families aimed at text scanners (`a.a.a…`, `a://a:a:…@`, `@@@…`,
  `?token=` repeated), sent by 4 client threads; timed from the first byte sent to the
  status line of the 4xx, while /healthz is polled every 10 ms on fresh connections;
- a 50 MB unsigned POST: headers with `Content-Length: 52428800`, then the body in
  64 KiB writes until the server answers or closes; timed from the first byte of the
  headers to the status line, and the worker's resident memory (VmRSS of the server
  master's child, from /proc) read before and after;
- slowloris: 100 connections each sending one header line every 2 s and never ending
  their headers (a connection the server cuts is reopened), for 30 s, while /healthz
  is polled every 50 ms and signed commands arrive at 2/s; every /healthz and command
  has its own bounded timeout (2 s and 5 s);
- slow bodies: the same, but each connection sends whole headers announcing a 1,000,000-byte
  body and then one byte of it every 2 s (under WSGI, four of these held every request
  thread of a worker).
The same three parts run against the same bot under gunicorn (`bot.wsgi:application`,
gthread 1 x 16, the settings it had before granian), for contrast only: no targets.

Targets (granian): every pathological body refused with a 4xx in < 100 ms, /healthz
p99 < 50 ms meanwhile; the 50 MB POST answered 413 in < 50 ms, worker RSS growth < 5 MB;
under slowloris /healthz p99 < 1 s, and every signed command sent meanwhile answered;
under slow bodies /healthz p99 < 50 ms, every signed command acked within 3 s and answered,
and every slow body cut (408, connection closed) within 1 s after its deadline (WEB_BODY_TIMEOUT).
"""

from __future__ import annotations

import contextlib
import select
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bench.figures import Options, keep_log, main_for, percentile, print_table, print_targets, spread_ms, target
from bench.load import ACK_DEADLINE, COMMAND_PATH, CommandClient, send_at_rate, wait_for_answers
from bench.processes import (
    HOST,
    SERVERS,
    EmulatorProcess,
    ServerProcess,
    bot_environment,
    fake_slack,
    http_json,
    memory_kb,
    reference_command,
    tracebacks,
    workspace,
)
from bot.sandbox.slack_emulator import FakeSlack

NAME = "front_door"
KIB = 1024
SIZES = (64 * KIB, 256 * KIB, 1024 * KIB)
FAMILIES = {  # each repeated to the size: what a careless regex would backtrack on
    "a.a.a…": b"a.",
    "a://a:a:…@": None,  # built below: a URL whose user-info never ends until the last byte
    "@@@…": b"@",
    "?token= repeated": b"?token=",
}
HUGE = 50 * 1024 * 1024  # the Content-Length announced: 52,428,800 bytes
CHUNK = 64 * KIB
TARGET_REFUSE_MS = 100.0
TARGET_HEALTH_P99_MS = 50.0
TARGET_HUGE_MS = 50.0
TARGET_RSS_GROWTH_MB = 5.0
TARGET_SLOWLORIS_HEALTH_P99_MS = 1000.0
TARGET_SLOW_BODY_HEALTH_P99_MS = 50.0
BODY_TIMEOUT_S = 10.0  # the bot's WEB_BODY_TIMEOUT default (bot/slack/edge.py BODY_TIMEOUT)
CUT_GRACE_S = 1.0  # a slow body is cut within this long after its deadline
SLOW_BODY_LENGTH = 1_000_000
HEALTH_TIMEOUT_S = 2.0
COMMAND_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Plan:
    sizes: tuple[int, ...]
    repeats: int  # per size and family
    huge_tries: int
    slow_connections: int
    slow_seconds: float
    slow_line_every_s: float
    command_rate: float
    servers: tuple[str, ...]
    body_timeout: float  # WEB_BODY_TIMEOUT for the bot under test


FULL = Plan(SIZES, 20, 3, 100, 30.0, 2.0, 2.0, SERVERS, BODY_TIMEOUT_S)
SMOKE = Plan((64 * KIB, 1024 * KIB), 1, 1, 20, 3.0, 1.0, 2.0, ("granian",), 1.5)


def run(options: Options) -> dict[str, Any]:
    plan = SMOKE if options.smoke else FULL
    results: dict[str, dict[str, Any]] = {}
    logs = []
    with workspace(NAME) as work, fake_slack() as fake, EmulatorProcess() as emulator:
        env = bot_environment(emulator, fake, work, DESK_CACHE_TTL=3600, WEB_BODY_TIMEOUT=str(plan.body_timeout))
        for server in plan.servers:
            with ServerProcess(env, work, reference_command("bot", server)) as process:
                _warm(process, fake)
                parts: dict[str, Any] = {}
                parts_to_run = (("bodies", _bodies), ("huge", _huge), ("slowloris", _slowloris),
                                ("slow_bodies", _slow_bodies))
                for part, measure in parts_to_run:
                    print(f"  {server}: {part}", flush=True)
                    parts[part] = measure(process, fake, plan)
                process.stop()
                log = process.log_text()
            parts["log"] = {
                "refusal_lines": sum("Refused" in line for line in log.splitlines()),
                "bytes": len(log.encode()),
                "tracebacks": tracebacks(log),
            }
            logs.append(f"=== {server} ===\n{log}")
            results[server] = parts
    keep_log(NAME, options, "\n".join(logs))
    figures = {
        "settings": {
            "sizes_bytes": list(plan.sizes),
            "families": list(FAMILIES),
            "repeats_per_size_and_family": plan.repeats,
            "sender_threads": 4,
            "huge_content_length": HUGE,
            "huge_tries": plan.huge_tries,
            "slowloris_connections": plan.slow_connections,
            "slowloris_seconds": plan.slow_seconds,
            "slowloris_line_every_s": plan.slow_line_every_s,
            "slow_body_content_length": SLOW_BODY_LENGTH,
            "slow_body_timeout_s": plan.body_timeout,
            "command_rate_per_s": plan.command_rate,
            "servers": list(plan.servers),
        },
        "servers": results,
        "targets": _targets(results["granian"], plan.body_timeout),
    }
    _print(results, figures["targets"])
    return figures


def _warm(process: ServerProcess, fake: FakeSlack) -> None:
    """One command fills the cache, so the commands sent later are answered in their ack."""
    first = CommandClient(process.port, fake).send("")
    if not wait_for_answers(fake, {first.name}, timeout=10):
        raise RuntimeError("the bot did not answer the warm-up command")


# --- helpers -------------------------------------------------------------------------------------


def _body(family: str, size: int) -> bytes:
    if family == "a://a:a:…@":
        middle = b"a:" * ((size - len(b"a://@")) // 2)
        body = b"a://" + middle
        return body + b"@" * (size - len(body))
    unit = FAMILIES[family]
    assert unit is not None
    return (unit * (size // len(unit) + 1))[:size]


def _head(port: int, length: int) -> bytes:
    return (
        f"POST {COMMAND_PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode()


def _status(line: bytes) -> int:
    parts = line.split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0


def _post_unsigned(port: int, body: bytes) -> tuple[int, float]:
    """One unsigned POST of `body`: its status and the seconds from the first byte to the status line."""
    with socket.create_connection((HOST, port), timeout=5.0) as sock:
        started = time.perf_counter()
        with contextlib.suppress(OSError):  # a server that answers early may close before the last byte
            sock.sendall(_head(port, len(body)) + body)
        try:
            line = sock.makefile("rb").readline(200)
        except OSError:
            line = b""
        return _status(line), time.perf_counter() - started


class HealthPoller:
    """GET /healthz on a fresh connection every `every` seconds, in a thread, each bounded by a timeout."""

    def __init__(self, port: int, every: float) -> None:
        self.port = port
        self.every = every
        self.answered: list[float] = []
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="healthz")

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                status, _ = http_json(self.port, "GET", "/healthz", timeout=HEALTH_TIMEOUT_S)
            except OSError:
                status = 0
            took = time.perf_counter() - started
            if status == 200:
                self.answered.append(took)
            else:
                self.failed += 1
            self._stop.wait(max(0.0, self.every - took))

    @contextlib.contextmanager
    def running(self) -> Iterator[HealthPoller]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=HEALTH_TIMEOUT_S + 1)

    def figures(self) -> dict[str, Any]:
        # A failed poll counts as the timeout in the percentiles: it is what a monitor would see.
        every = [*self.answered, *[HEALTH_TIMEOUT_S] * self.failed]
        return {"polls": len(every), "answered": len(self.answered), "failed": self.failed, **spread_ms(every)}


# --- part 1: pathological bodies -----------------------------------------------------------------


def _bodies(process: ServerProcess, fake: FakeSlack, plan: Plan) -> dict[str, Any]:
    jobs = [(family, size) for _ in range(plan.repeats) for size in plan.sizes for family in FAMILIES]
    bodies = {(family, size): _body(family, size) for family in FAMILIES for size in plan.sizes}
    results: list[tuple[str, int, int, float]] = []
    (worker,) = process.worker_pids()
    rss_before = memory_kb(worker).get("rss_kb", 0)
    started = time.monotonic()
    with HealthPoller(process.port, every=0.01).running() as health, ThreadPoolExecutor(4) as pool:
        time.sleep(0.2)  # a few polls before the bodies, for comparison
        for (family, size), (status, seconds) in zip(
            jobs, pool.map(lambda job: _post_unsigned(process.port, bodies[job]), jobs), strict=True
        ):
            results.append((family, size, status, seconds))
        time.sleep(0.1)
    rows = []
    for size in plan.sizes:
        for family in FAMILIES:
            mine = [(status, s) for f, z, status, s in results if f == family and z == size]
            statuses = sorted({status for status, _ in mine})
            rows.append({"family": family, "bytes": size, "sent": len(mine), "statuses": statuses,
                         **spread_ms([s for _, s in mine])})
    every = [s for *_, s in results]
    return {
        "requests": len(results),
        "seconds": round(time.monotonic() - started, 2),
        "all_4xx": all(400 <= status < 500 for _, _, status, _ in results),
        "statuses": sorted({status for _, _, status, _ in results}),
        "to_4xx": spread_ms(every),
        "rows": rows,
        "healthz": health.figures(),
        "worker_rss_mb_before": round(rss_before / 1024, 1),
        "worker_rss_mb_after": round(memory_kb(worker).get("rss_kb", 0) / 1024, 1),
    }


# --- part 2: one 50 MB POST ----------------------------------------------------------------------


def _huge(process: ServerProcess, fake: FakeSlack, plan: Plan) -> dict[str, Any]:
    (worker,) = process.worker_pids()
    # One refused body first, so the RSS read before the big one has every code path loaded.
    _post_unsigned(process.port, _body("@@@…", 64 * KIB))
    time.sleep(0.2)
    before = memory_kb(worker).get("rss_kb", 0)
    tries = []
    for _ in range(plan.huge_tries):
        tries.append(_send_huge(process.port))
        time.sleep(0.3)
        tries[-1]["rss_kb_after"] = memory_kb(worker).get("rss_kb", 0)
    peak = max(t["rss_kb_after"] for t in tries)
    return {
        "worker_pid": worker,
        "rss_mb_before": round(before / 1024, 1),
        "rss_mb_after": round(peak / 1024, 1),
        "rss_growth_mb": round((peak - before) / 1024, 2),
        "tries": tries,
        "statuses": sorted({t["status"] for t in tries}),
        "answer_ms_max": max(t["answer_ms"] for t in tries),
    }


def _send_huge(port: int) -> dict[str, Any]:
    """Headers announcing HUGE bytes, then 64 KiB writes until the server answers or closes (10 s at most)."""
    chunk = b"a" * CHUNK
    with socket.create_connection((HOST, port), timeout=5.0) as sock:
        started = time.perf_counter()
        sock.sendall(_head(port, HUGE))
        sock.setblocking(False)
        sent, answer, closed_by = 0, b"", ""
        while sent < HUGE and time.perf_counter() - started < 10.0:
            readable, writable, _ = select.select([sock], [sock], [], 1.0)
            if readable:
                try:
                    answer = sock.recv(4096)
                except OSError as error:
                    closed_by = type(error).__name__
                closed_by = closed_by or ("answer" if answer else "close")
                break
            if writable:
                try:
                    sent += sock.send(chunk[: HUGE - sent])
                except OSError as error:
                    closed_by = type(error).__name__
                    # The server answered and closed while this side was still writing: its answer
                    # may be waiting unread (a loaded machine lets the write fail first).
                    with contextlib.suppress(OSError):
                        answer = sock.recv(4096)
                    break
        answered_s = time.perf_counter() - started
        # After the answer: does the server close the connection, or keep reading the rest?
        closed_after_s = None
        sock.setblocking(True)
        sock.settimeout(2.0)
        with contextlib.suppress(OSError):
            while sock.recv(65536):
                pass
            closed_after_s = round(time.perf_counter() - started, 3)
    return {
        "status": _status(answer.split(b"\r\n", 1)[0]),
        "answer_ms": round(answered_s * 1000, 2),
        "ended_by": closed_by or "timeout",
        "body_bytes_sent": sent,
        "closed_after_s": closed_after_s,
    }


# --- part 3: slowloris -----------------------------------------------------------------------------


class Slowloris:
    """`count` connections that send one header line (or, with `body`, whole headers and then one
    byte of a long body) every `every` seconds and never finish, staggered over the period; one
    the server closes is counted and reopened."""

    def __init__(self, port: int, count: int, every: float, *, body: bool = False) -> None:
        self.port = port
        self.count = count
        self.every = every
        self.body = body
        self.opened = 0
        self.cut: list[float] = []  # how long each connection the server closed had lived, seconds
        self.answers: dict[int, int] = {}  # status of anything the server said before closing
        self.lines_sent = 0
        self.connect_failures = 0

    def _open(self) -> tuple[socket.socket, float] | None:
        try:
            sock = socket.create_connection((HOST, self.port), timeout=2.0)
            opening = f"POST {COMMAND_PATH} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
            if self.body:
                opening += (
                    "Content-Type: application/x-www-form-urlencoded\r\n"
                    f"Content-Length: {SLOW_BODY_LENGTH}\r\n\r\ntext="
                )
            sock.sendall(opening.encode())
        except OSError:
            self.connect_failures += 1
            return None
        self.opened += 1
        return sock, time.monotonic()

    def run(self, seconds: float) -> None:
        start = time.monotonic()
        slots: list[tuple[socket.socket, float] | None] = [self._open() for _ in range(self.count)]
        tick = self.every / self.count  # one connection's turn every `tick`: each sends every `every`
        turn = 0
        try:
            while time.monotonic() - start < seconds:
                self._reap(slots)
                index = turn % self.count
                slot = slots[index]
                if slot is None:
                    slots[index] = self._open()
                else:
                    try:
                        slot[0].sendall(b"a" if self.body else f"X-Slow-{turn}: a\r\n".encode())
                        self.lines_sent += 1
                    except OSError:
                        self.cut.append(time.monotonic() - slot[1])
                        slot[0].close()
                        slots[index] = self._open()
                turn += 1
                time.sleep(max(0.0, start + turn * tick - time.monotonic()))
        finally:
            for slot in slots:
                if slot is not None:
                    slot[0].close()

    def _reap(self, slots: list[tuple[socket.socket, float] | None]) -> None:
        """Close and forget the connections the server has answered or closed."""
        live = {slot[0]: i for i, slot in enumerate(slots) if slot is not None}
        if not live:
            return
        readable, _, _ = select.select(list(live), [], [], 0)
        for sock in readable:
            index = live[sock]
            slot = slots[index]
            assert slot is not None
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            if data:
                status = _status(data.split(b"\r\n", 1)[0])
                self.answers[status] = self.answers.get(status, 0) + 1
            self.cut.append(time.monotonic() - slot[1])
            sock.close()
            slots[index] = None


def _slowloris(process: ServerProcess, fake: FakeSlack, plan: Plan) -> dict[str, Any]:
    return _trickle(process, fake, plan, body=False)


def _slow_bodies(process: ServerProcess, fake: FakeSlack, plan: Plan) -> dict[str, Any]:
    return _trickle(process, fake, plan, body=True)


def _trickle(process: ServerProcess, fake: FakeSlack, plan: Plan, *, body: bool) -> dict[str, Any]:
    attack = Slowloris(process.port, plan.slow_connections, plan.slow_line_every_s, body=body)
    attacker = threading.Thread(target=attack.run, args=(plan.slow_seconds,), daemon=True, name="slowloris")
    client = CommandClient(process.port, fake, timeout=COMMAND_TIMEOUT_S)
    count = max(1, round(plan.command_rate * (plan.slow_seconds - 1.0)))
    with HealthPoller(process.port, every=0.05).running() as health:
        attacker.start()
        time.sleep(min(1.0, plan.slow_seconds / 4))  # every slow connection is open before the commands
        sent = send_at_rate(client, [""] * count, plan.command_rate, threads=8)
        attacker.join(timeout=plan.slow_seconds + 10)
    late = {s.name for s in sent if s.status == 200 and not s.answered_in_ack}
    wait_for_answers(fake, late, timeout=5)
    got = {c.path.rsplit("/", 1)[-1] for c in fake.responses() if 200 <= c.status < 300}
    answered = sum(1 for s in sent if s.answered_in_ack or (s.status == 200 and s.name in got))
    return {
        "connections": plan.slow_connections,
        "seconds": plan.slow_seconds,
        "opened": attack.opened,
        "cut_by_server": len(attack.cut),
        "cut_after_s": {"min": _s(min(attack.cut, default=None)), "median": _s(percentile(attack.cut, 50)),
                        "max": _s(max(attack.cut, default=None))},
        "answers_before_cut": attack.answers,
        "drips_sent": attack.lines_sent,
        "connect_failures": attack.connect_failures,
        "healthz": health.figures(),
        "commands": {
            "sent": len(sent),
            "acked_200": sum(1 for s in sent if s.status == 200),
            "acked_in_time": sum(1 for s in sent if s.acked),
            "answered": answered,
            "no_answer": sum(1 for s in sent if s.status == 0),
            **spread_ms([s.ack_s for s in sent if s.status == 200]),
        },
    }


def _s(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


# --- targets and the table -----------------------------------------------------------------------


def _targets(granian: dict[str, Any], body_timeout: float) -> list[dict[str, Any]]:
    bodies, huge, slow = granian["bodies"], granian["huge"], granian["slowloris"]
    trickled = granian["slow_bodies"]
    trickled_commands, trickled_health = trickled["commands"], trickled["healthz"]
    cut_max = trickled["cut_after_s"]["max"]
    worst_refusal = bodies["to_4xx"]["max_ms"] or 0.0
    health, slow_health = bodies["healthz"], slow["healthz"]
    commands = slow["commands"]
    return [
        target(
            f"pathological bodies: every one a 4xx in < {TARGET_REFUSE_MS:g} ms",
            f"{bodies['requests']} refused ({', '.join(map(str, bodies['statuses']))}), slowest "
            f"{worst_refusal:,.1f} ms",
            bodies["all_4xx"] and worst_refusal < TARGET_REFUSE_MS,
        ),
        target(
            f"/healthz p99 < {TARGET_HEALTH_P99_MS:g} ms while they arrive",
            f"{health['p99_ms']} ms ({health['answered']}/{health['polls']} answered)",
            health["failed"] == 0 and (health["p99_ms"] or 0) < TARGET_HEALTH_P99_MS,
        ),
        target(
            f"50 MB POST: 413 in < {TARGET_HUGE_MS:g} ms",
            f"{', '.join(map(str, huge['statuses']))} in {huge['answer_ms_max']:.1f} ms (slowest of "
            f"{len(huge['tries'])})",
            huge["statuses"] == [413] and huge["answer_ms_max"] < TARGET_HUGE_MS,
        ),
        target(
            f"50 MB POST: worker RSS growth < {TARGET_RSS_GROWTH_MB:g} MB",
            f"{huge['rss_growth_mb']:+.2f} MB ({huge['rss_mb_before']} → {huge['rss_mb_after']} MB)",
            huge["rss_growth_mb"] < TARGET_RSS_GROWTH_MB,
        ),
        target(
            f"{slow['connections']} slowloris connections: /healthz p99 < {TARGET_SLOWLORIS_HEALTH_P99_MS:g} ms",
            f"{slow_health['p99_ms']} ms ({slow_health['answered']}/{slow_health['polls']} answered)",
            slow_health["failed"] == 0 and (slow_health["p99_ms"] or 0) < TARGET_SLOWLORIS_HEALTH_P99_MS,
        ),
        target(
            "slowloris: every signed command sent meanwhile answered",
            f"{commands['answered']}/{commands['sent']} (acked within {ACK_DEADLINE:g} s: "
            f"{commands['acked_in_time']})",
            commands["sent"] > 0 and commands["answered"] == commands["sent"] == commands["acked_in_time"],
        ),
        target(
            f"{trickled['connections']} slow bodies: /healthz p99 < {TARGET_SLOW_BODY_HEALTH_P99_MS:g} ms",
            f"{trickled_health['p99_ms']} ms ({trickled_health['answered']}/{trickled_health['polls']} answered)",
            trickled_health["failed"] == 0 and (trickled_health["p99_ms"] or 0) < TARGET_SLOW_BODY_HEALTH_P99_MS,
        ),
        target(
            f"slow bodies: every signed command acked within {ACK_DEADLINE:g} s and answered",
            f"{trickled_commands['answered']}/{trickled_commands['sent']} (acked in time: "
            f"{trickled_commands['acked_in_time']}, p99 {trickled_commands['p99_ms']} ms)",
            trickled_commands["sent"] > 0
            and trickled_commands["answered"] == trickled_commands["sent"] == trickled_commands["acked_in_time"],
        ),
        target(
            f"slow bodies: each cut within {CUT_GRACE_S:g} s after its {body_timeout:g} s deadline",
            f"{trickled['cut_by_server']} cut ({trickled['answers_before_cut']}), after {trickled['cut_after_s']} s",
            trickled["cut_by_server"] >= trickled["connections"]
            and cut_max is not None and cut_max <= body_timeout + CUT_GRACE_S,
        ),
    ]


def _print(results: dict[str, dict[str, Any]], targets: Sequence[dict[str, Any]]) -> None:
    rows = []
    for server, parts in results.items():
        b, h, s, t = parts["bodies"], parts["huge"], parts["slowloris"], parts["slow_bodies"]
        rows.append([server, b["requests"], b["to_4xx"]["p50_ms"], b["to_4xx"]["max_ms"], b["healthz"]["p99_ms"],
                     h["answer_ms_max"], h["rss_growth_mb"], s["healthz"]["p99_ms"], s["healthz"]["failed"],
                     f"{s['commands']['answered']}/{s['commands']['sent']}", s["cut_by_server"],
                     t["healthz"]["p99_ms"], f"{t['commands']['answered']}/{t['commands']['sent']}",
                     t["cut_by_server"]])
    print_table(
        "Front door",
        ["server", "bodies", "4xx p50 ms", "4xx max ms", "healthz p99 ms", "50 MB: 413 ms", "RSS +MB",
         "slowloris healthz p99 ms", "healthz failed", "commands answered", "slow conns cut",
         "slow bodies healthz p99 ms", "commands answered", "slow bodies cut"],
        rows,
    )
    print_targets(targets)


def main(argv: Sequence[str] | None = None) -> int:
    return main_for(NAME, __doc__.splitlines()[0], run, argv)


if __name__ == "__main__":
    sys.exit(main())
