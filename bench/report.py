"""Run every benchmark and regenerate docs/benchmarks.md from their figures.

    python -m bench                  # all nine, full runs (about thirteen minutes), then the document
    python -m bench --render-only    # only rewrite the document from bench/results/*.json
    python -m bench --smoke          # every script's smoke run (no document unless --doc is given)
    python -m bench --only soak      # some of them

Each benchmark runs as its own process (`python -m bench.<name>`), one after the
other, so that none of them shares a machine with another. The document holds the
machine's description, every target with its verdict, the figures, and, for a
missed target, why (written from the profiles and the runs; shown only while the
target is missed). The figures are rendered here; the fixed text around them (the
introduction, the notes on a missed target, the findings) is docs/benchmarks.prose.md's.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import REPO
from bench.figures import DEFAULT_RESULTS

BENCHMARKS = (
    "ack_path", "hung_upstream", "cold_burst", "refresh_storm", "start_size", "soak", "front_door", "apps_status",
    "watch_load", "views_open",
)
TITLES = {
    "ack_path": "1. Ack path",
    "hung_upstream": "2. Hung upstream",
    "cold_burst": "3. Cold burst",
    "refresh_storm": "4. Refresh storm",
    "start_size": "5. Start and size",
    "soak": "6. Soak with faults",
    "front_door": "7. Front door",
    "apps_status": "8. Several apps and readiness",
    "watch_load": "9. Change alerts under load",
    "views_open": "10. Settings modal opens while Desk is slow",
}
DOC = REPO / "docs" / "benchmarks.md"
PROSE = REPO / "docs" / "benchmarks.prose.md"
TIMEOUT_S = 600  # one benchmark (the ack path takes ~5 minutes); the full set about 10


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="the scripts' short runs")
    parser.add_argument("--render-only", action="store_true", help="only regenerate the document")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--doc", type=Path, help=f"where the document goes (default {DOC.relative_to(REPO)})")
    args = parser.parse_args(argv)
    names = tuple(args.only or BENCHMARKS)
    failed: list[str] = []
    if not args.render_only:
        calibration = python_speed()
        started = time.monotonic()
        for name in names:
            command = [sys.executable, "-m", f"bench.{name}", "--results-dir", str(args.results_dir)]
            if args.smoke:
                command.append("--smoke")
            print(f"\n=== {name} ===", flush=True)
            try:
                done = subprocess.run(command, cwd=REPO, timeout=TIMEOUT_S, check=False)
            except subprocess.TimeoutExpired:
                print(f"{name} did not finish within {TIMEOUT_S} s", flush=True)
                failed.append(name)
                continue
            if done.returncode != 0:
                failed.append(name)
        total = time.monotonic() - started
        print(f"\nall benchmarks took {total:.0f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
        if not args.only:  # total.json describes the last whole run; the document names the ones since
            (args.results_dir / f"total{'.smoke' if args.smoke else ''}.json").write_text(
                json.dumps(
                    {"seconds": round(total, 1), "benchmarks": list(names), "failed": failed,
                     "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "python_loop_10m_s": [calibration, python_speed()]}
                ) + "\n"
            )
    doc = args.doc or (None if args.smoke else DOC)
    if doc is not None:
        doc.write_text(render(args.results_dir, smoke=args.smoke), encoding="utf-8")
        print(f"wrote {doc}")
    return 1 if failed else 0


def python_speed() -> float:
    """Seconds for ten million additions in a Python loop: a yardstick for comparing machines."""
    started = time.perf_counter()
    total = 0
    for number in range(10_000_000):
        total += number
    return round(time.perf_counter() - started, 2)


# --- the document --------------------------------------------------------------------------------


def read_results(results_dir: Path, smoke: bool = False) -> dict[str, dict[str, Any]]:
    suffix = ".smoke.json" if smoke else ".json"
    found = {}
    for name in BENCHMARKS:
        path = results_dir / f"{name}{suffix}"
        if path.exists():
            found[name] = json.loads(path.read_text(encoding="utf-8"))
    return found


def render(results_dir: Path, smoke: bool = False) -> str:
    results = read_results(results_dir, smoke)
    total_path = results_dir / f"total{'.smoke' if smoke else ''}.json"
    total = json.loads(total_path.read_text()) if total_path.exists() else None
    parts = ["# Benchmarks", "", passage("intro"), ""]
    if not results:
        return "\n".join([*parts, passage("no figures"), ""])
    parts += _machine(results, total)
    parts += _summary(results)
    parts += _choosing_the_server(results)
    renderers: dict[str, Callable[[dict[str, Any]], list[str]]] = {
        "ack_path": _ack_path,
        "hung_upstream": _hung_upstream,
        "cold_burst": _cold_burst,
        "refresh_storm": _refresh_storm,
        "start_size": _start_size,
        "soak": _soak,
        "front_door": _front_door,
        "apps_status": _apps_status,
        "watch_load": _watch_load,
        "views_open": _views_open,
    }
    for name in BENCHMARKS:
        if name not in results:
            continue
        figures = results[name]
        parts += [f"## {TITLES[name]}", "", _method(name), ""]
        parts += renderers[name](figures)
        parts += _targets(name, figures)
    parts += [passage("findings"), ""]
    return "\n".join(parts).rstrip() + "\n"


def _whole_run(results: dict[str, dict[str, Any]], total: dict[str, Any] | None) -> str:
    """The last whole `python -m bench`'s time, and which benchmarks were run on their own since."""
    if not total:
        return ""
    whole = set(total.get("benchmarks", ()))
    ended = total.get("finished_at", "")
    alone = sorted(name for name, r in results.items() if name not in whole or r["finished_at"] > ended)
    since = f"; run on their own since: {', '.join(alone)}" if alone else ""
    return f"; the last whole run ({', '.join(total.get('benchmarks', ()))}) took {total['seconds']:.0f} s{since}"


def _machine(results: dict[str, dict[str, Any]], total: dict[str, Any] | None) -> list[str]:
    first = next(iter(results.values()))
    machine = first["machine"]
    libraries = ", ".join(f"{k} {v}" for k, v in machine.get("libraries", {}).items())
    finished = sorted(r["finished_at"] for r in results.values())
    rows = [
        ("CPU", f"{machine['cpu']}, {machine['cores']} cores"),
        ("memory", f"{machine['memory_gb']} GB"),
        ("OS", machine["os"]),
        ("Python", machine["python"]),
        ("libraries", libraries),
        ("wrk", machine.get("wrk") or "not installed"),
        ("redis-server", machine.get("redis-server") or "not installed"),
        ("run", f"{finished[0]} to {finished[-1]}" + _whole_run(results, total)),
    ]
    if total and total.get("python_loop_10m_s"):
        speeds = total["python_loop_10m_s"]
        took = " s and ".join(str(v) for v in (speeds if isinstance(speeds, list) else [speeds]))
        rows.append(("Python speed", f"a loop of ten million additions took {took} s before and after the runs "
                     "(single thread: a yardstick for comparing with another machine; on this shared virtual "
                     "machine it varied from 0.5 to 1.5 s over the day, so compare figures within one run)"))
    ack = results.get("ack_path", {}).get("checks", {})
    if ack.get("load_average_before") is not None:
        rows.append(("background load", f"1-minute load average {ack['load_average_before']} before the ack-path "
                     "runs (the ack-path runs are interleaved, so background load hits every app alike)"))
    return ["## Machine", "", "| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows], ""]


def _summary(results: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["## Targets at a glance", "", "| benchmark | target | measured | met |", "|---|---|---|---|"]
    for name in BENCHMARKS:
        for t in results.get(name, {}).get("targets", []):
            lines.append(f"| {TITLES[name]} | {_md(t['target'])} | {_md(t['measured'])} | {_met(t['met'])} |")
    return [*lines, ""]


def _targets(name: str, figures: dict[str, Any]) -> list[str]:
    lines = ["", "| target | measured | met |", "|---|---|---|"]
    notes = []
    for t in figures.get("targets", []):
        lines.append(f"| {_md(t['target'])} | {_md(t['measured'])} | {_met(t['met'])} |")
        if not t["met"]:
            found = [text for piece, text in why_missed(name).items() if piece in t["target"]]
            notes += found or [passage("not analysed")]
    lines.append("")
    for note in dict.fromkeys(notes):
        lines += [f"**Why missed.** {note}", ""]
    return lines


def _method(name: str) -> str:
    """The benchmark module's docstring, after its first line."""
    module = __import__(f"bench.{name}", fromlist=["__doc__"])
    doc = (module.__doc__ or "").strip().split("\n", 1)
    return doc[1].strip() if len(doc) > 1 else ""


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    return [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
        *["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows],
    ]


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return _md(str(value))


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _met(met: bool) -> str:
    return "yes" if met else "**NO**"


# --- the fixed text, from docs/benchmarks.prose.md -----------------------------------------------

_PASSAGE = re.compile(r"^<!-- passage: (.+?) -->$", re.MULTILINE)
_WHY_MISSED = "why missed: "


@functools.cache
def _passages() -> dict[str, str]:
    """The prose file's passages by name, each paragraph on one line (the file is wrapped for editing)."""
    pieces = _PASSAGE.split(PROSE.read_text(encoding="utf-8"))  # its header, then name, text, name, text, …
    return {
        name: "\n\n".join(" ".join(line.strip() for line in paragraph.splitlines())
                          for paragraph in re.split(r"\n\s*\n", text.strip()))
        for name, text in zip(pieces[1::2], pieces[2::2], strict=True)
    }


def passage(name: str) -> str:
    return _passages()[name]


def why_missed(benchmark: str) -> dict[str, str]:
    """The notes on `benchmark`'s missed targets, by a piece of the target's text, in the file's order."""
    prefix = f"{_WHY_MISSED}{benchmark}: "
    return {name.removeprefix(prefix): text for name, text in _passages().items() if name.startswith(prefix)}


# --- one section per benchmark ----------------------------------------------------------------


def _ack_path(f: dict[str, Any]) -> list[str]:
    labels, settings = f["labels"], f["settings"]
    servers = settings.get("servers", {})
    rows = [
        [labels[key].rsplit(", ", 1)[0], key.split("@")[1], r["connections"], r["rps"], r["p50_ms"], r["p99_ms"],
         r["errors"]]
        for key, runs in f["runs"].items()
        for r in runs
    ]
    lines = [
        f"wrk: {settings['load']}; {settings['rounds']} round(s) of {settings['seconds_per_run']:g} s per app, "
        f"server and connection count, interleaved; {settings['reported']}. "
        + " ".join(f"{name}: {text}." for name, text in servers.items()),
        "",
        *_table(["app", "server", "connections", "requests/s", "p50 ms", "p99 ms", "errors"], rows),
        "",
        passage("ack path: against the references"),
        "",
        *_table(
            ["connections", "bot (granian) req/s", "x (b) granian", "bot via Bolt req/s", "via Bolt x (b)",
             "status req/s", "status / list", "p99 x (b)", "x (a) on gunicorn", "x (c) granian"],
            [[c["connections"], c["bot_rps"], c["granian_vs_bolt_pbr"], c["bot_bolt_rps"], c["bot_bolt_vs_bolt_pbr"],
              c["bot_status_rps"], c["status_vs_list"], c["p99_vs_bolt_pbr"], c["vs_bolt_default"],
              c["granian_vs_plain"]] for c in f["comparisons"]],
        ),
        "",
    ]
    checks = f["checks"]
    names = {"granian": "the bot under granian", "bot-bolt@granian": "with WEB_ACK_SHORTCUT=0",
             "gunicorn": "under gunicorn", "status": "a warm status"}
    per_server = "; ".join(
        f"{name}: {checks[key].get('ack_body_bytes')} bytes of Block Kit in the ack before the runs, "
        f"and after them {_fmt(checks[key].get('answer_in_ack_after_runs'))}"
        for key, name in names.items() if key in checks
    )
    lines.append(
        f"Checks: the ack carried the whole answer ({per_server}); Desk calls during the runs: "
        f"{checks.get('upstream_calls_during_runs')}; response_url posts during the runs: "
        f"{checks.get('response_url_posts_during_runs')}."
    )
    return lines


def _choosing_the_server(results: dict[str, dict[str, Any]]) -> list[str]:
    """gunicorn against granian, from the ack path and the front door: the figures behind the README's choice."""
    ack, door = results.get("ack_path"), results.get("front_door")
    if not ack or "comparisons" not in ack or "bot@gunicorn" not in ack.get("runs", {}):
        return []
    lines = [
        "## Choosing the HTTP server",
        "",
        passage("choosing the server"),
        "",
        "Ack path, requests/s and p50 (wrk, keep-alive, one worker):",
        "",
    ]
    names = {"bot": "desk-languages-bot", "bolt-default": "(a) bare Bolt, defaults", "bolt-pbr":
             "(b) bare Bolt, process_before_response", "plain": "(c) the floor: verify, parse, 200"}
    rows = []
    for app, name in names.items():
        for u, g in zip(ack["runs"][f"{app}@gunicorn"], ack["runs"][f"{app}@granian"], strict=True):
            ratio = round(g["rps"] / u["rps"], 2) if u["rps"] else None
            rows.append([name, u["connections"], u["rps"], g["rps"], ratio, u["p50_ms"], g["p50_ms"]])
    lines += _table(["app", "connections", "gunicorn req/s", "granian req/s", "granian / gunicorn", "gunicorn p50 ms",
                     "granian p50 ms"], rows)
    lines.append("")
    if door and set(door.get("servers", {})) >= {"granian", "gunicorn"}:
        lines += ["The front door (the bot, one worker; section 7):", ""]
        door_rows = []
        for server in ("gunicorn", "granian"):
            d = door["servers"][server]
            b, h, sl = d["bodies"], d["huge"], d["slowloris"]
            door_rows.append([
                server,
                f"{b['to_4xx']['max_ms']:,.1f} ms",
                f"{', '.join(map(str, h['statuses']))} in {h['answer_ms_max']:,.1f} ms, "
                f"RSS {h['rss_growth_mb']:+.1f} MB",
                f"{sl['healthz']['p99_ms']:,.0f} ms ({sl['healthz']['answered']}/{sl['healthz']['polls']})",
                f"{sl['commands']['answered']}/{sl['commands']['sent']}",
                f"{sl['cut_by_server']}"
                + (f", after {sl['cut_after_s']['median']:g} s" if sl["cut_by_server"] else ""),
            ])
        conns = door["servers"]["granian"]["slowloris"]["connections"]
        lines += _table(["server", "slowest 4xx to a pathological body", "50 MB unsigned POST",
                         f"/healthz p99 under {conns} slowloris (answered)", "signed commands answered meanwhile",
                         "slowloris connections cut by the server"], door_rows)
        lines.append("")
    lines += [
        passage("why granian"),
        "",
    ]
    return lines


def _hung_upstream(f: dict[str, Any]) -> list[str]:
    s = f["settings"]
    rows = [
        [r["scenario"], r["rate_per_s"], r["commands"], r["acked_200"], r["ack"]["p50_ms"], r["ack"]["p99_ms"],
         r["answered"], r["answered_in_time"], r["reply"]["p50_ms"], r["reply"]["max_ms"], r["desk_calls"]]
        for r in f["scenarios"]
    ]
    return [
        f"DESK_TIMEOUT {s['desk_timeout_s']:g} s, {s['desk']}, {s['seconds_per_scenario']:g} s of commands per "
        f"scenario, {s['lazy_threads']} lazy-listener threads.",
        "",
        *_table(["scenario", "rate/s", "commands", "acked", "ack p50 ms", "ack p99 ms", "answered",
                 f"within {s['desk_timeout_s'] + 1:g} s", "reply p50 ms", "reply max ms", "Desk calls"], rows),
        "",
        "Desk calls (seconds after the first): "
        + "; ".join(f"{r['scenario']}: {', '.join(f'{t:g}' for t in r['desk_call_times_s'])}" for r in f["scenarios"])
        + ".",
    ]


def _cold_burst(f: dict[str, Any]) -> list[str]:
    rows = [
        [r["round"], r["desk_calls"], r["acked_200"], r["ack"]["p50_ms"], r["ack"]["p99_ms"], r["answered_in_ack"],
         r["answered_via_response_url"], r["more_than_one_answer"], r["all_answered_after_ms"]]
        for r in f["rounds"]
    ]
    return _table(["round", "Desk calls", "acked", "ack p50 ms", "ack p99 ms", "answered in the ack",
                   "answered via response_url", "answered twice", "all answered after ms"], rows)


def _refresh_storm(f: dict[str, Any]) -> list[str]:
    rows = [
        [r["variant"], r["desk_calls"], r["max_desk_calls_in_1s"], r["desk_minus_14"], r["users_saw_minus_14"],
         f"{r['answered']}/{r['commands']}", r["reply"]["p50_ms"], r["reply"]["max_ms"],
         ", ".join(f"{k} {v}" for k, v in r["reply_kinds"].items())]
        for r in f["variants"]
    ]
    return _table(["variant", "Desk calls", "most in 1 s", "Desk answered -14", "users saw -14", "answered",
                   "reply p50 ms", "reply max ms", "what users got"], rows)


def _start_size(f: dict[str, Any]) -> list[str]:
    start = f["start_s"]
    first = f["settings"].get("first_reading_after", 100)
    rows = [[f"worker {i + 1}", w["rss_mb_at_boot"], w.get("rss_mb_after_first"), w["rss_mb"], w["pss_mb"]]
            for i, w in enumerate(f["workers"])]
    rows.append(["master", None, None, f["master"]["rss_mb"], f["master"]["pss_mb"]])
    return [
        f"Start to /healthz 200, {f['settings']['starts']} fresh starts: "
        + ", ".join(f"{s:.2f}" for s in start["each"]) + f" s (median {start['median']:.2f} s).",
        "",
        *([
            "From each start's first command to its answer (a cold cache: Desk read, list rendered) against "
            "the 100th, a `refresh` (the same work): "
            + ", ".join(f"{c['first_ms']:g} / {c['hundredth_ms']:g} ms" for c in f["first_command"]["each"])
            + f" (the first slower by {f['first_command']['median_first_over_hundredth_ms']:+g} ms, median).",
            "",
        ] if "first_command" in f else []),
        f"Memory, {f['settings']['workers']} workers, after {f['commands_sent']:,} commands "
        f"({f['answered']:,} answered):",
        "",
        *_table(["process", "RSS MB at boot", f"RSS MB after {first}", f"RSS MB after {f['commands_sent']:,}",
                 "PSS MB"], rows),
    ]


def _soak(f: dict[str, Any]) -> list[str]:
    s, kill, writes, alerts = f["settings"], f["kill"], f["writes"], f["alerts"]
    lines = [
        f"{f['requests_sent']:,} requests (commands and clicks) in {f.get('sending_seconds', s['seconds'])} s, "
        f"scenarios started at {s['rate_per_s']:g}/s, over {', '.join(s['processes'])}; DESK_TIMEOUT "
        f"{s['desk_timeout_s']:g} s, DESK_CACHE_TTL {s['cache_ttl_s']} s, "
        f"DESK_WATCH_INTERVAL {s['watch_interval_s']} s; "
        f"a Desk fault every {s['desk_fault_every_s']:g} s, a response_url 500 every "
        f"{s['response_url_500_every_s']:g} s and a chat.postMessage 429 every {s['post_message_429_every_s']:g} s "
        f"on average; a console change every {s['console_change_every_s']:g} s. {kill.get('process', '?')} (its "
        f"tickers off) was drained mid-run (no new requests, every one it had answered, its counters still: "
        f"{kill.get('drain_s', '?')} s), scraped, SIGKILLed and back "
        f"{round(kill.get('back_at', 0) - kill.get('at', 0), 1)} s later (boot "
        f"{kill.get('restart_s', '?')} s): {kill['resent']} requests refused meanwhile were re-sent to another "
        f"route, {kill['cut']} were cut by the kill (not counted below).",
        "",
        *_table(
            ["counted", "acked", "HTTP 5xx", "ack p99 ms", "answered in the ack", "exactly once", "never",
             "more than once", "tracebacks", "ERROR lines"],
            [[f["requests_counted"], f["acked"], f["http_5xx"], f["ack"]["p99_ms"], f["answered_in_ack"],
              f["answered_exactly_once"], f["never_answered"], f["answered_more_than_once"],
              sum(f["tracebacks_in_logs"].values()), f["error_lines_in_logs"]]],
        ),
        "",
        "What users got, by scenario:",
        "",
        *_table(["scenario → answer", "requests"], list(f["answer_kinds"].items())),
        "",
        f"Changes through the bot: {writes['intents']} admin add/remove commands, "
        f"{writes['refused_before_confirmation']} "
        f"refused before a confirmation (the language already there or not, the limit, Desk failing), "
        f"{writes['confirmed']} confirmed ({writes['double']} by two clicks at once to two routes), "
        f"{writes['intents'] - writes['refused_before_confirmation'] - writes['confirmed']} cancelled then "
        f"confirmed or, under two-person approval, not approved. Writes at Desk: {writes['sent']} "
        f"({', '.join(f'{k} {v}' for k, v in writes['outcomes'].items())}); audit: "
        f"{', '.join(f'{k} {v}' for k, v in writes['audit_results'].items())}.",
        "",
        *_two_person_lines(writes.get("two_person")),
        *_change_control_lines(f.get("change_control")),
        f"Watch: {alerts['events']} events ({', '.join(f'{k} {v}' for k, v in alerts['event_kinds'].items())}), "
        f"{alerts['due']} alerts due in the watching channels, {alerts['delivered_once']} delivered exactly once; "
        f"{alerts['answered_429']} alert posts answered 429 and retried; the removed channel's "
        f"{alerts['gone_attempts']} post(s) answered not_in_channel; the throwaway channel got "
        f"{alerts['toggled_channel_posts']} while it watched.",
        "",
        "Faults injected, and what Desk answered:",
        "",
        *_table(["fault", "times"], list(f["faults_injected"].items())),
        "",
        *_table(["app, API: outcome", "calls"], list(f["desk_outcomes"].items())),
        "",
        f"/metrics against the soak's own counts, once all traffic was answered: the totals of every "
        f"process life summed (both HTTP processes, the Socket Mode process's METRICS_PORT, and the killed "
        f"process's scrape just before its kill); they "
        f"{'agree exactly' if f['metrics']['agree'] else 'do not agree'} "
        f"(after {f['metrics']['scrapes']} scrape(s)):",
        "",
        *_table(["count", "labels", "soak", "/metrics"],
                [[r["count"], r["labels"], r["soak"], r["metrics"]] for r in f["metrics"]["rows"]]),
        "",
    ]
    digest = f["digest"]
    if digest.get("due"):
        lines.append(
            f"Digest due {digest['due']}: {digest['post_attempts']} chat.postMessage attempt(s), "
            f"{digest['answered_429']} answered 429 (Retry-After 1), {digest['posted']} posted. "
            f"response_url posts answered 500 (and retried by the bot): {f['response_url_posts_refused']}."
        )
    for lost in f.get("not_once_detail", []):
        lines.append(f"- not answered once: {lost['scenario']} `{lost['text'] or '(list)'}` to {lost['process']}, "
                     f"ack {lost['ack_status']}, {lost['answers']} answers")
    return lines


def _two_person_lines(two: dict[str, Any] | None) -> list[str]:
    """The app under two-person approval in the soak (older runs have none)."""
    if not two:
        return []
    return [
        f"Two-person approval (staging, DESK_STAGING_APPROVALS=2, DESK_APPROVAL_TTL 60 s): "
        f"{two['intents']} admin changes confirmed by their requester, {two['held']} posted as requests "
        f"({', '.join(f'{k} {v}' for k, v in two['variants'].items())}), {two['refused_by_lock']} refused by the "
        f"app's lock; {two['writes_sent']} writes at Desk for {two['approved']} approved requests, "
        f"{two['without_approval']} without another person's approval, {two['twice']} twice; ended without a "
        f"write: {', '.join(f'{k} {v}' for k, v in two['ended_without_write'].items()) or 'none'}.",
        "",
    ]


def _change_control_lines(change: dict[str, Any] | None) -> list[str]:
    """plan and apply run as the command line during the soak (older runs have none)."""
    if not change:
        return []
    exits = ", ".join(f"exit {k}: {v}" for k, v in change["approved_exits"].items())
    return [
        f"Change control (the command line, beside the servers): {change['plans']} `plan --json` "
        f"({', '.join(f'exit {k}: {v}' for k, v in change['plan_exits'].items())}; {change['writes_by_plan']} "
        f"writes); {change['applies_unapproved']} `apply --app staging` without --approved-by, "
        f"{change['refused_one_line']} refused in one line (exit 2), {change['writes_by_unapproved']} writes; "
        f"{change['applies_approved']} with --approved-by a second admin ({exits}; {change['refused_by_lock']} "
        f"refused while a request waited in Slack): {change['applied']} applied of {change['writes_sent']} "
        f"writes sent, {change['audited']} audit lines as apply:<user>, {change['without_approver']} without "
        f"the approver, {change['twice']} twice.",
        "",
    ]


def _front_door(f: dict[str, Any]) -> list[str]:
    s = f["settings"]
    lines = [
        f"Pathological bodies: {len(s['sizes_bytes'])} sizes x {len(s['families'])} families x "
        f"{s['repeats_per_size_and_family']} by {s['sender_threads']} threads; 50 MB: {s['huge_tries']} tries; "
        f"slowloris: {s['slowloris_connections']} connections for {s['slowloris_seconds']:g} s, a header line "
        f"every {s['slowloris_line_every_s']:g} s each, signed commands at {s['command_rate_per_s']:g}/s. "
        "gunicorn is the contrast: no targets.",
        "",
        "Pathological bodies, time from the first byte to the 4xx (granian):",
        "",
    ]
    granian = f["servers"]["granian"]
    lines += _table(
        ["family", "bytes", "sent", "status", "p50 ms", "max ms"],
        [[r["family"], r["bytes"], r["sent"], ", ".join(map(str, r["statuses"])), r["p50_ms"], r["max_ms"]]
         for r in granian["bodies"]["rows"]],
    )
    lines += ["", "Every part, per server:", ""]
    rows = []
    for server, d in f["servers"].items():
        b, h, sl = d["bodies"], d["huge"], d["slowloris"]
        cut = sl["cut_after_s"]
        rows.append([
            server,
            f"{b['requests']}: {', '.join(map(str, b['statuses']))}, p50 {b['to_4xx']['p50_ms']} ms, "
            f"max {b['to_4xx']['max_ms']} ms",
            f"p99 {b['healthz']['p99_ms']} ms ({b['healthz']['answered']}/{b['healthz']['polls']})",
            f"{b['worker_rss_mb_before']} → {b['worker_rss_mb_after']}",
            "; ".join(f"{t['status']} in {t['answer_ms']} ms after {t['body_bytes_sent'] / 1024 / 1024:.1f} MB"
                      for t in h["tries"]),
            f"{h['rss_mb_before']} → {h['rss_mb_after']} ({h['rss_growth_mb']:+.2f})",
            f"p99 {sl['healthz']['p99_ms']} ms ({sl['healthz']['answered']}/{sl['healthz']['polls']})",
            f"{sl['commands']['answered']}/{sl['commands']['sent']}, ack p99 {sl['commands']['p99_ms']} ms",
            f"{sl['cut_by_server']} of {sl['opened']} opened" + (f", after {cut['min']}-{cut['max']} s"
                                                                 if sl["cut_by_server"] else ""),
            f"{d['log']['refusal_lines']} ({d['log']['bytes']:,} bytes of log, {d['log']['tracebacks']} tracebacks)",
        ])
    lines += _table(
        ["server", "pathological bodies", "/healthz meanwhile", "worker RSS MB", "50 MB POST", "worker RSS MB",
         "slowloris: /healthz", "slowloris: commands answered", "slow connections cut", "refusal log lines"],
        rows,
    )
    lines += ["", f"Slow bodies: {s['slowloris_connections']} connections, each announcing a "
              f"{s.get('slow_body_content_length', 1_000_000):,}-byte body and sending one byte of it every "
              f"{s['slowloris_line_every_s']:g} s, for {s['slowloris_seconds']:g} s (WEB_BODY_TIMEOUT "
              f"{s.get('slow_body_timeout_s', 10):g} s); signed commands at {s['command_rate_per_s']:g}/s:", ""]
    slow_rows = []
    for server, d in f["servers"].items():
        t = d.get("slow_bodies")
        if t is None:
            continue
        cut = t["cut_after_s"]
        slow_rows.append([
            server,
            f"p99 {t['healthz']['p99_ms']} ms ({t['healthz']['answered']}/{t['healthz']['polls']})",
            f"{t['commands']['answered']}/{t['commands']['sent']}, acked in time {t['commands']['acked_in_time']}, "
            f"ack p99 {t['commands']['p99_ms']} ms",
            f"{t['cut_by_server']} of {t['opened']} opened" + (f", after {cut['min']}-{cut['max']} s"
                                                               if t["cut_by_server"] else ""),
            ", ".join(f"{count} x {status}" for status, count in t["answers_before_cut"].items()) or "none",
        ])
    lines += _table(["server", "/healthz meanwhile", "signed commands answered", "slow bodies cut",
                     "answers before the cut"], slow_rows)
    lines += [
        "",
        passage("front door: slow bodies by server"),
    ]
    return lines


def _apps_status(f: dict[str, Any]) -> list[str]:
    s, apps, status = f["settings"], f["apps"], f["status"]
    names = s["apps"]
    apps_rows = [
        [r["start"], r["cold"]["reply_ms"], "/".join(str(r["cold"]["desk_calls"][n]) for n in names),
         r["ack"]["p99_ms"], f"{r['answered_in_time']}/{len(r['reply_ms_each'])}",
         max((ms for ms in r["reply_ms_each"] if ms is not None), default=None),
         "/".join(str(r["desk_calls_after_all"][n]) for n in names), r["more_than_one_answer"],
         r["tracebacks_in_log"]]
        for r in apps["rounds"]
    ]
    kinds = sorted({kind for r in apps["rounds"] for kind in r["reply_kinds"]})
    status_rows = [
        [r["start"], r["cold"]["ack_ms"], r["cold"]["report_ms"], r["cold"]["desk_calls"]["list"],
         r["cold"]["desk_calls"]["list_faq"], r["cold"]["desk_calls"]["desc_robot_config"],
         f"{r['warm']['answered_in_ack']}/{r['warm']['commands']}", r["warm"]["ack"]["p50_ms"],
         r["warm"]["ack"]["p99_ms"], r["desk_calls_after_all"]["all"] - r["cold"]["desk_calls"]["all"]]
        for r in status["rounds"]
    ]
    first = status["rounds"][0]["cold"]["desk_call_offsets_ms"] if status["rounds"] else {}
    lines = [
        f"DESK_TIMEOUT {s['desk_timeout_s']:g} s; {s['bot_starts']} fresh bot start(s) for each part.",
        "",
        f"`apps` ({', '.join(names)}; `{s['hanging_app']}` hangs every call {s['hang_s']:g} s), "
        f"{s['apps_commands_per_start']} commands per start, each sent when the previous reply had arrived; "
        "Desk calls as prod/staging/eu:",
        "",
        *_table(["start", "cold reply ms", "Desk calls after it", "ack p99 ms",
                 f"answered within {s['desk_timeout_s'] + 1:g} s", "slowest reply ms", "Desk calls after all",
                 "answered twice", "tracebacks"], apps_rows),
        "",
        f"The {len(apps['rounds']) * (s['apps_commands_per_start'] - 1)} "
        f"later replies: p50 {_fmt(apps['warm_reply']['p50_ms'])} ms, p99 {_fmt(apps['warm_reply']['p99_ms'])} ms "
        f"(a failed fetch is shared for 5 s, so `{s['hanging_app']}` was asked again only by a command more than "
        f"5 s after its last failure: "
        f"{', '.join(str(r['desk_calls_after_all'][s['hanging_app']]) for r in apps['rounds'])} call(s) per start). "
        "What users got: "
        + "; ".join(f"\"{k}\"" for k in kinds) + ".",
        "",
        f"`status` ({s['status_languages']} languages, `list_faq` and `desc_robot_config` answered "
        f"{s['check_latency_s'] * 1000:.0f} ms late): the cold one is acked with the \"checking\" notice and its "
        f"report follows through the response_url; then {s['warm_status_acks_per_start']} more, one at a time:",
        "",
        *_table(["start", "cold ack ms", "cold report ms", "list calls", "list_faq calls", "desc_robot_config calls",
                 "warm answered in the ack", "warm ack p50 ms", "warm ack p99 ms", "Desk calls after the cold one"],
                status_rows),
        "",
        f"Warm acks over all starts ({status['warm_commands']}): p50 {_fmt(status['warm_ack']['p50_ms'])} ms, "
        f"p99 {_fmt(status['warm_ack']['p99_ms'])} ms, max {_fmt(status['warm_ack']['max_ms'])} ms.",
    ]
    if status.get("wrk"):
        w = status["wrk"]
        lines += ["", f"wrk, a signed `status` for {w['seconds']:g} s over {w['connections']} keep-alive connections "
                  f"(warm: every ack carries the report): {w['rps']:,.0f} requests/s, p50 {w['p50_ms']} ms, p99 "
                  f"{w['p99_ms']} ms, {w['errors']} errors; the ack after it still the report: "
                  f"{_fmt(w.get('answered_in_ack_after'))}."]
    if first:
        lines += ["", "When the cold report's Desk calls arrived (ms after the command, first start): "
                  + "; ".join(f"{api}: {', '.join(f'{t:,.0f}' for t in times)}" for api, times in first.items())
                  + "."]
    return lines


def _watch_load(f: dict[str, Any]) -> list[str]:
    s = f["settings"]
    steps = sorted({c["step"] for c in f["changes"]})
    return [
        f"{s['processes']} processes, apps {', '.join(s['apps'])}, {s['channels']} channels watching each, "
        f"DESK_WATCH_INTERVAL {s['interval_s']:g} s, {s['duration_s']:g} s of changes, database: {s['database']}.",
        "",
        *_table(["changes (steps; both apps change at each)", "interval slots", "Desk list calls",
                 "most in one slot", "alerts posted", "exactly once", "missing", "duplicated",
                 "latency p50 s", "latency max s", "tracebacks"],
                [[f"{len(f['changes'])} ({len(steps)})", f["interval_slots"],
                  ", ".join(f"{app} {n}" for app, n in f["desk_calls"].items()),
                  ", ".join(f"{app} {n}" for app, n in f["max_desk_calls_per_slot"].items()),
                  f["alerts_posted"], f"{f['alerts_exactly_once']}/{f['alerts_expected']}", f["alerts_missing"],
                  f["alerts_duplicated"], f["latency_s"]["p50"], f["latency_s"]["max"], f["tracebacks_in_log"]]]),
    ]


def _views_open(f: dict[str, Any]) -> list[str]:
    s = f["settings"]
    rows = [
        [r["scenario"], r["rate_per_s"], r["commands"], r["ack"]["p99_ms"], r["opened"], r["views_open"]["p50_ms"],
         r["views_open"]["p99_ms"], r["views_open"]["max_ms"], r["filled"], r["fill"]["p50_ms"], r["fill"]["p99_ms"],
         ", ".join(f"{kind} {count}" for kind, count in sorted(r["shown"].items()))]
        for r in f["scenarios"]
    ]
    return [
        f"Desk answers desc_robot_config in {s['desk_answers_in_s']:g} s; DESK_TIMEOUT {s['desk_timeout_s']:g} s; "
        f"the bot's limit for that API {s['desk_rate_limit_per_s']} calls/s; the modal's threads: "
        f"{s['openers']} openers, {s['fillers']} fillers. Times from the command leaving the client.",
        "",
        *_table(["scenario", "rate/s", "commands", "ack p99 ms", "opened", "views.open p50 ms", "p99 ms", "max ms",
                 "filled", "filled p50 ms", "p99 ms", "the modal at the end"], rows),
    ]


if __name__ == "__main__":
    sys.exit(main())
