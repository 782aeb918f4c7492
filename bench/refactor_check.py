"""The refactor check: the bot's ack path before the composition-root refactor and now, in one run.

Not part of `python -m bench`; rerun it with `python -m bench.refactor_check` (about two
minutes), then `python -m bench --render-only` to put its figures in docs/benchmarks.md.

The commit before the refactor (`5c28b51` by default, `--before REV`) and HEAD (`--now REV`)
are each checked out with `git worktree add` into a temporary directory, so that edits in
the working tree do not count, and served from there (PYTHONPATH pointing at the checkout,
so its own `bot` and `handlers` are imported: checked before the runs). "Before" runs its
own `python -m bot serve`, which at that commit runs gunicorn (gthread, 1 worker x 16);
"now" is `bot.wsgi:application` under the same gunicorn settings
(`bench.baselines.gunicorn_options`, bench/baselines.py run as a script). Both have a warm
cache, so every ack carries the list; wrk sends the same signed command to both,
interleaved, 2 rounds of 5 s at 2, 10 and 50 connections; reported: the better round of
each. The worktrees are removed afterwards (`git worktree remove`).

Besides the refactor (27d1729), the commits since `5c28b51` put the HTTP edge of
bot/web.py in front of Bolt (a9b4ef1: its own signature check before Bolt's) and
redaction changes, so "now" measures all of them together.

Targets: now >= 0.95x before in requests/s at every connection count, and CPU per ack
no more than 1/0.95 of before's (no slowdown beyond noise).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.ack_path import _best, _load_average, _warm_the_cache
from bench.harness import (
    REPO,
    EmulatorProcess,
    Options,
    ServerProcess,
    bot_environment,
    fake_slack,
    print_table,
    print_targets,
    run_wrk,
    target,
    workspace,
    write_results,
)
from bot.slack_sandbox import slash_command_body

NAME = "refactor_check"
BEFORE = "5c28b51"
COMMITTED = REPO / "bench" / f"{NAME}.json"  # the last full run's figures, kept in git for bench/report.py
TARGET_RATIO = 0.95
VARIANTS = ("before", "now")


def run(options: Options, revisions: dict[str, str], rounds: int = 2) -> dict[str, Any]:
    connections: Sequence[int] = (2,) if options.smoke else (2, 10, 50)
    rounds = 1 if options.smoke else rounds
    duration = 1.0 if options.smoke else 5.0
    warmup = 0.0 if options.smoke else 2.0
    commits = {v: _git("rev-parse", "--short", f"{revisions[v]}^{{commit}}") for v in VARIANTS}
    every_run: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    checks: dict[str, Any] = {"load_average_before": _load_average()}
    with ExitStack() as stack:
        trees = {}
        for variant in VARIANTS:
            trees[variant] = Path(tempfile.mkdtemp(prefix=f"bench-{variant}-"))
            trees[variant].rmdir()  # git worktree add creates it
            _git("worktree", "add", "--detach", str(trees[variant]), commits[variant])
            stack.callback(_remove_worktree, trees[variant])
        work = stack.enter_context(workspace(NAME))
        fake = stack.enter_context(fake_slack())
        emulator = stack.enter_context(EmulatorProcess())
        env = bot_environment(emulator, fake, work, DESK_CACHE_TTL=3600)
        envs = {v: {**env, "PYTHONPATH": str(trees[v])} for v in VARIANTS}
        for variant in VARIANTS:
            checks[f"{variant}_imports_from_its_checkout"] = _imports_from(envs[variant], trees[variant])
        baselines = str(REPO / "bench" / "baselines.py")  # as a script: only its `bot` comes from PYTHONPATH
        running = {
            "before": ServerProcess(envs["before"], work, [sys.executable, "-m", "bot", "serve"]),
            "now": ServerProcess(envs["now"], work, [sys.executable, baselines, "bot", "--server", "gunicorn"]),
        }
        for server in running.values():
            stack.callback(server.stop)
            server.launch()
        for server in running.values():
            server.wait_ready()
        for variant, server in running.items():
            checks[variant] = _warm_the_cache(server, fake)
            checks[variant]["server_log_says_gunicorn"] = "gunicorn" in server.log_text().lower()
        bodies = {v: slash_command_body("", response_url=fake.response_url(f"wrk-{v}")) for v in VARIANTS}
        for variant in VARIANTS if warmup else ():
            run_wrk(running[variant].port, bodies[variant], connections=10, duration=warmup, workdir=work)
        emulator.reset_calls()
        for round_ in range(1, rounds + 1):
            for count in connections:
                for variant in VARIANTS:
                    port = running[variant].port
                    figures = run_wrk(port, bodies[variant], connections=count, duration=duration, workdir=work)
                    every_run[variant].append({"round": round_, **figures})
                    print(f"  round {round_} {variant:<6} {count:>2} conns: {figures['rps']:>8,.0f} req/s", flush=True)
        checks["upstream_calls_during_runs"] = len(emulator.calls())
        for server in running.values():
            server.stop()
        cpu = _cpu_per_ack(envs, fake, work, 1 if options.smoke else CPU_ROUNDS, 200 if options.smoke else CPU_CALLS)
        checks["load_average_after"] = _load_average()
    runs = {v: [_best(every_run[v], count) for count in connections] for v in VARIANTS}
    ratios = [
        {"connections": count, "before_rps": b["rps"], "now_rps": n["rps"],
         "now_over_before": round(n["rps"] / b["rps"], 2), "before_p50_ms": b["p50_ms"], "now_p50_ms": n["p50_ms"]}
        for count, b, n in zip(connections, runs["before"], runs["now"], strict=True)
    ]
    worst = min(ratios, key=lambda r: r["now_over_before"])
    errors = sum(r["errors"] for rs in runs.values() for r in rs)
    cpu_best = {v: min(r["cpu_us"] for r in cpu[v]) for v in VARIANTS}
    targets = [
        target(
            f"CPU per ack, in-process: now <= {1 / TARGET_RATIO:.2f}x before",
            f"{cpu_best['now']:.0f} µs against {cpu_best['before']:.0f} µs "
            f"({cpu_best['now'] / cpu_best['before']:.2f}x, best of {len(cpu['now'])})",
            cpu_best["now"] <= cpu_best["before"] / TARGET_RATIO,
        ),
        target(
            f"now >= {TARGET_RATIO:g}x before, req/s, at every connection count (same server: gunicorn)",
            f"{worst['now_over_before']:.2f}x (lowest, at {worst['connections']} connections)",
            worst["now_over_before"] >= TARGET_RATIO,
        ),
        target("no errors or non-2xx answers in any run", str(errors), errors == 0),
    ]
    print_table(
        "Before and after the refactor (gunicorn, wrk, keep-alive)",
        ["conns", "before req/s", "now req/s", "now/before", "before p50 ms", "now p50 ms"],
        [[r["connections"], r["before_rps"], r["now_rps"], r["now_over_before"], r["before_p50_ms"], r["now_p50_ms"]]
         for r in ratios],
    )
    print(f"\nCPU per ack in-process (best of each): {cpu_best}")
    print_targets(targets)
    return {
        "settings": {
            "before": commits["before"],
            "now": commits["now"],
            "server": "gunicorn with the same options for both (1 worker x 16 gthreads, keep-alive 5 s)",
            "load": "wrk, 1 thread, keep-alive, one fixed signed command",
            "seconds_per_run": duration,
            "rounds": rounds,
            "reported": "per variant and connection count, the round with the most requests/s",
            "warmup_seconds": warmup,
        },
        "runs": runs,
        "every_run": every_run,
        "ratios": ratios,
        "cpu_per_ack": cpu,
        "cpu_per_ack_best_us": cpu_best,
        "checks": checks,
        "targets": targets,
    }

CPU_ROUNDS = 3  # in-process probes per variant, alternating
CPU_CALLS = 2000  # acks per probe
# Runs in a process of its own with PYTHONPATH at one checkout: builds that checkout's WSGI app
# (`bot.wsgi.create_application`, at both commits), warms its cache with one command, then
# times CPU_CALLS acks of the same signed command called directly, with no server.
_PROBE = """
import io, json, os, sys, time
from slack_sdk.signature import SignatureVerifier
from bot.wsgi import create_application
body, secret, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
app = create_application()
def environ():
    ts = str(int(time.time()))
    sig = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {"REQUEST_METHOD": "POST", "PATH_INFO": "/slack/events", "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
            "CONTENT_TYPE": "application/x-www-form-urlencoded", "CONTENT_LENGTH": str(len(body)),
            "HTTP_X_SLACK_REQUEST_TIMESTAMP": ts, "HTTP_X_SLACK_SIGNATURE": sig, "HTTP_HOST": "127.0.0.1",
            "wsgi.input": io.BytesIO(body.encode())}
status = []
def start_response(s, headers, exc_info=None):
    status.append(s)
b"".join(app(environ(), start_response))  # cold: answered later through response_url
time.sleep(1.5)
envs = [environ() for _ in range(calls)]
out = b"".join(app(environ(), start_response))
assert b"Desk chatbot languages" in out, out[:200]
cpu, wall = time.process_time(), time.perf_counter()
for e in envs:
    out = b"".join(app(e, start_response))
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
assert all(s.startswith("200") for s in status), set(status)
print(json.dumps({"cpu_us": round(cpu / calls * 1e6, 1), "wall_us": round(wall / calls * 1e6, 1),
                  "ack_bytes": len(out), "module": sys.modules["bot"].__file__}))
"""


def _cpu_per_ack(
    envs: dict[str, dict[str, str]], fake: Any, work: Path, rounds: int, calls: int
) -> dict[str, list[dict[str, Any]]]:
    """CPU per ack of each checkout's WSGI app, called in-process: far less noisy than wrk on a shared machine."""
    from bench.harness import SIGNING_SECRET

    found: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    for _ in range(rounds):
        for variant in VARIANTS:
            body = slash_command_body("", response_url=fake.response_url(f"cpu-{variant}"))
            done = subprocess.run([sys.executable, "-c", _PROBE, body, SIGNING_SECRET, str(calls)],
                                  env={**envs[variant], "LOG_LEVEL": "WARNING"}, cwd=work, capture_output=True,
                                  text=True, timeout=120, check=False)
            lines = done.stdout.strip().splitlines()
            if done.returncode != 0 or not lines:
                raise RuntimeError(f"the CPU probe of {variant} failed: {done.stderr[-2000:]}")
            found[variant].append(json.loads(lines[-1]))
            print(f"  CPU probe {variant:<6}: {found[variant][-1]['cpu_us']:.0f} µs per ack", flush=True)
    return found


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def _remove_worktree(tree: Path) -> None:
    try:
        _git("worktree", "remove", "--force", str(tree))
    except RuntimeError as error:
        print(f"could not remove the worktree {tree}: {error}", file=sys.stderr)
        shutil.rmtree(tree, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=REPO, timeout=60, check=False)


def _imports_from(env: dict[str, str], tree: Path) -> bool:
    """Whether a process with `env` imports `bot` and `handlers` from `tree` (not from the working tree)."""
    code = "import bot, handlers; print(bot.__file__); print(handlers.__file__)"
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tempfile.gettempdir(), capture_output=True,
                          text=True, timeout=60, check=False)
    paths = done.stdout.split()
    if done.returncode != 0 or len(paths) != 2 or not all(Path(p).resolve().is_relative_to(tree.resolve())
                                                          for p in paths):
        raise RuntimeError(f"the 'before' server would not run the checked-out code: {done.stdout}{done.stderr}")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a run of a few seconds, to check the script works")
    parser.add_argument("--before", default=BEFORE, help=f"the commit before the refactor (default {BEFORE})")
    parser.add_argument("--now", default="HEAD", help="the commit to compare it with (default HEAD)")
    parser.add_argument("--rounds", type=int, default=2, help="wrk rounds per variant and connection count")
    parser.add_argument("--results-dir", type=Path,
                        default=Path(os.environ.get("BENCH_RESULTS_DIR") or REPO / "bench" / "results"))
    args = parser.parse_args(argv)
    options = Options(smoke=args.smoke, results_dir=args.results_dir)
    started = time.monotonic()
    figures = run(options, {"before": args.before, "now": args.now}, args.rounds)
    figures["wall_seconds"] = round(time.monotonic() - started, 1)
    path = write_results(NAME, options, figures)
    if not options.smoke:  # bench/results/ is not in git: keep a copy beside this script for the document
        COMMITTED.write_text(json.dumps(json.loads(path.read_text()), indent=2) + "\n", encoding="utf-8")
        print(f"and copied to {COMMITTED.relative_to(REPO)} (commit it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
