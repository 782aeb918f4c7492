"""A benchmark's command line and the figures it keeps: the JSON, the table, the machine.

- `main_for()`: the command line of one benchmark (`Options`: `--smoke`, `--results-dir`),
  its run timed and its figures written by `write_results()` as JSON under bench/results/
  (`<name>.json`, `<name>.smoke.json`), with `machine()`'s description of the machine;
  `keep_log()` keeps a server's log beside them.
- `target()`, `print_targets()`, `print_table()`: targets with their verdicts, and the
  table printed on stdout.
- `percentile()`, `spread_ms()`: the summaries of timings that the figures hold.

bench/report.py renders docs/benchmarks.md from these JSON files.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import REPO

DEFAULT_RESULTS = REPO / "bench" / "results"
LIBRARIES = (  # whose versions the machine's description names
    "slack-bolt", "slack-sdk", "granian", "gunicorn", "requests", "cachetools", "pyrate-limiter", "tenacity", "redis",
)


# --- command line and results ------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    smoke: bool
    results_dir: Path


def parse_options(description: str, argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true", help="a run of a few seconds, to check the script works")
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=Path(os.environ.get("BENCH_RESULTS_DIR") or DEFAULT_RESULTS),
        help="where the JSON figures go (default: bench/results, or $BENCH_RESULTS_DIR)",
    )
    args = parser.parse_args(argv)
    return Options(smoke=args.smoke, results_dir=args.results_dir)


def write_results(name: str, options: Options, figures: dict[str, Any]) -> Path:
    """Write `<results_dir>/<name>.json` (`<name>.smoke.json` for a smoke run)."""
    options.results_dir.mkdir(parents=True, exist_ok=True)
    path = options.results_dir / f"{name}{'.smoke' if options.smoke else ''}.json"
    document = {
        "benchmark": name,
        "smoke": options.smoke,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        **figures,
    }
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    print(f"\nfigures written to {path}")
    return path


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    print(f"\n{title}")
    for index, row in enumerate(cells):
        print("  ".join(value.rjust(widths[i]) if i else value.ljust(widths[i]) for i, value in enumerate(row)))
        if index == 0:
            print("  ".join("-" * w for w in widths))


def keep_log(name: str, options: Options, text: str) -> Path:
    """Keep a server's log next to the figures (`<name>.server.log`), for reading after the run."""
    options.results_dir.mkdir(parents=True, exist_ok=True)
    path = options.results_dir / f"{name}{'.smoke' if options.smoke else ''}.server.log"
    path.write_text(text, encoding="utf-8")
    return path


def print_targets(targets: Sequence[dict[str, Any]]) -> None:
    print_table("Targets", ["target", "measured", "met"], [[t["target"], t["measured"], t["met"]] for t in targets])


def target(description: str, measured: str, met: bool) -> dict[str, Any]:
    return {"target": description, "measured": measured, "met": bool(met)}


def main_for(name: str, description: str, run: Callable[[Options], dict[str, Any]], argv: Sequence[str] | None) -> int:
    """The command line of one benchmark: parse, run, time, write the JSON."""
    options = parse_options(description, argv)
    started = time.monotonic()
    figures = run(options)
    figures["wall_seconds"] = round(time.monotonic() - started, 1)
    write_results(name, options, figures)
    return 0


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "—" if value is None else str(value)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def spread_ms(values_s: Sequence[float]) -> dict[str, float | None]:
    """p50, p99 and max of durations given in seconds, in milliseconds."""
    as_ms = [v * 1000 for v in values_s]
    return {
        "p50_ms": _round(percentile(as_ms, 50)),
        "p99_ms": _round(percentile(as_ms, 99)),
        "max_ms": _round(max(as_ms) if as_ms else None),
    }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


# --- the machine -------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, OS, and the versions of Python and of the libraries on the path."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = found.group(1).strip() if found else platform.processor() or "unknown"
    memory_gb = None
    with contextlib.suppress(OSError, AttributeError, ValueError):
        kb = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        memory_gb = round(int(kb.group(1)) / 1024 / 1024, 1) if kb else None
    versions: dict[str, str] = {}
    for name in LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": memory_gb,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "libraries": versions,
        "wrk": _first_line([_which("wrk"), "-v"]),
        "redis-server": _first_line([_which("redis-server"), "--version"]),
    }


def _which(program: str) -> str:
    return shutil.which(program) or program


def _first_line(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else None
