"""The benchmark scripts still run: each one's `--smoke` run, as its own process, writes sane figures.

These check that the scripts work end to end (real granian and gunicorn, emulator,
FakeSlack, wrk, redis-server) and that their JSON has the shape docs/benchmarks.md is built
from. They assert no timing targets: the full runs (`python -m bench`) measure those.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.environment import missing_service, pg_tool

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 150  # seconds for one smoke run; most take a few
SOAK_TIMEOUT = 240  # the soak about a minute and a half: it also runs plan and apply as six processes


def run_smoke(name: str, results: Path, timeout: float = TIMEOUT) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DESK_", "SLACK_", "REDIS_", "DATABASE_"))}
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--smoke", "--results-dir", str(results)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures: dict[str, Any] = json.loads((results / f"{name}.smoke.json").read_text())
    assert figures["benchmark"] == name and figures["smoke"] is True
    assert figures["machine"]["cores"] >= 1 and figures["machine"]["python"]
    assert figures["targets"], "every benchmark states its targets"
    for target in figures["targets"]:
        assert set(target) == {"target", "measured", "met"} and isinstance(target["met"], bool)
    return figures


@pytest.mark.e2e
def test_ack_path(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        missing_service("wrk (apt-get install wrk)")
    figures = run_smoke("ack_path", tmp_path)
    apps = {"bot", "bolt-default", "bolt-pbr", "plain"}
    served = {f"{app}@{server}" for app in apps for server in ("granian", "gunicorn")}
    assert set(figures["runs"]) == served | {"bot-bolt@granian", "bot-status@granian"}
    for runs in figures["runs"].values():
        (run,) = runs
        assert run["connections"] == 2 and run["requests"] > 0 and run["rps"] > 0 and run["errors"] == 0
        assert 0 < run["p50_ms"] <= run["p99_ms"]
    checks = figures["checks"]
    # the bot under each server, with and without the edge's shortcut, answered the list in its ack, and
    # a warm status carried the report
    for key in ("granian", "gunicorn", "bot-bolt@granian", "status"):
        assert checks[key]["answer_in_ack_before_runs"] and checks[key]["answer_in_ack_after_runs"], key
    assert checks["upstream_calls_during_runs"] == 0  # a warm cache: wrk's commands never reach Desk
    (comparison,) = figures["comparisons"]
    assert comparison["granian_vs_bolt_pbr"] > 0 and comparison["status_vs_list"] > 0
    assert set(comparison["granian_over_gunicorn"]) == apps
    assert {t["target"].split(" ")[0] for t in figures["targets"]} >= {"the", "p50", "a", "no"}


@pytest.mark.e2e
def test_hung_upstream(tmp_path: Path) -> None:
    figures = run_smoke("hung_upstream", tmp_path)
    (scenario,) = figures["scenarios"]
    assert scenario["commands"] > 0 and scenario["acked_200"] == scenario["commands"]
    assert scenario["answered"] == scenario["commands"]  # at smoke rates every command gets its reply
    assert set(scenario["reply_kinds"]) == {"read-timeout"}  # Desk never answered, and the user was told
    assert scenario["desk_calls"] >= 1 and scenario["tracebacks_in_log"] == 0


@pytest.mark.e2e
def test_cold_burst(tmp_path: Path) -> None:
    figures = run_smoke("cold_burst", tmp_path)
    (burst,) = figures["rounds"]
    assert burst["acked_200"] == burst["commands"] == burst["answered"]
    assert burst["answered_in_ack"] + burst["answered_via_response_url"] == burst["commands"]
    assert burst["desk_calls"] >= 1 and burst["all_answered_after_ms"] > 0


@pytest.mark.e2e
def test_refresh_storm(tmp_path: Path) -> None:
    figures = run_smoke("refresh_storm", tmp_path)
    variants = {v["variant"]: v for v in figures["variants"]}
    assert "1 process" in variants
    if shutil.which("redis-server") is None:
        missing_service("redis-server (apt-get install redis-server)")
    assert "3 processes + Redis" in variants
    for variant in variants.values():
        assert variant["acked_200"] == variant["commands"] > 0
        assert variant["answered"] == variant["commands"]
        assert variant["desk_calls"] >= 1 and variant["max_desk_calls_in_1s"] >= 1


@pytest.mark.e2e
def test_start_size(tmp_path: Path) -> None:
    figures = run_smoke("start_size", tmp_path)
    assert figures["start_s"]["max"] > 0
    assert len(figures["workers"]) == figures["settings"]["workers"]
    for worker in figures["workers"]:
        assert worker["rss_mb"] > 0 and worker["pss_mb"] > 0
    assert figures["all_answered"]
    (first,) = figures["first_command"]["each"]  # both answered, each after a read of Desk
    assert first["first_ms"] > 0 and first["hundredth_ms"] > 0


@pytest.mark.e2e
def test_soak(tmp_path: Path) -> None:
    """The wide soak's smoke run meets every target it states (the same ones as the full run)."""
    if shutil.which("redis-server") is None:
        missing_service("redis-server (apt-get install redis-server)")
    if pg_tool("initdb") is None:
        missing_service("PostgreSQL (apt-get install postgresql)")
    figures = run_smoke("soak", tmp_path, timeout=SOAK_TIMEOUT)
    missed = [t for t in figures["targets"] if not t["met"]]
    assert not missed, missed
    assert figures["requests_counted"] == figures["answered_exactly_once"] > 0 and figures["http_5xx"] == 0
    assert set(figures["by_process"]) == {"http-1", "http-2", "socket"} and figures["kill"]["restart_s"] > 0
    assert figures["kill"]["drained"] and "not_still" not in figures["kill"]  # the victim was quiet at its kill
    writes, alerts = figures["writes"], figures["alerts"]
    assert writes["applied"] >= 1 and writes["audited"] == writes["requests_done"] >= 1  # some reached Desk
    assert alerts["events"] >= 1 and alerts["delivered_once"] == alerts["due"] > 0
    change = figures["change_control"]  # plan and apply as processes, beside the servers
    assert change["plans"] >= 2 and change["plan_json_schema_1"] >= 1 and change["writes_by_plan"] == 0
    assert change["applies_unapproved"] >= 2 and change["refused_one_line"] >= 1 and change["writes_by_unapproved"] == 0
    assert change["applied"] >= 1 and change["audited"] >= 1 and change["without_approver"] == 0  # the first round
    assert change["twice"] == 0 and change["writes_outside_runs"] == 0
    metrics = figures["metrics"]
    assert metrics["agree"] is True, metrics["disagreements"]  # /metrics totals = the soak's counts, exactly
    counts = metrics["soak"]
    assert set(counts["desk_calls"]) == {"prod", "staging"}
    for route in ("http", "socket"):  # every route carried commands and clicks
        assert counts["requests"][f"{route}/command"] > 0 and counts["requests"][f"{route}/block_actions"] > 0
    compared = {row["count"] for row in metrics["rows"]}
    assert compared == {"requests", "Desk calls", "watch alerts", "digests", "Slack API calls"}
    assert (tmp_path / "soak.smoke.server.log").exists()


@pytest.mark.e2e
def test_front_door(tmp_path: Path) -> None:
    figures = run_smoke("front_door", tmp_path)
    granian = figures["servers"]["granian"]
    bodies, huge, slow = granian["bodies"], granian["huge"], granian["slowloris"]
    assert bodies["requests"] > 0 and bodies["all_4xx"] and bodies["healthz"]["answered"] > 0
    assert huge["statuses"] == [413] and huge["rss_mb_before"] > 0  # refused from its Content-Length, unread
    assert all(t["body_bytes_sent"] < 50 * 1024 * 1024 for t in huge["tries"])
    assert slow["opened"] >= slow["connections"] > 0 and slow["drips_sent"] > 0
    assert slow["healthz"]["answered"] > 0 and slow["commands"]["sent"] > 0
    assert slow["commands"]["answered"] == slow["commands"]["sent"]
    trickled = granian["slow_bodies"]
    assert trickled["commands"]["sent"] > 0 and trickled["commands"]["answered"] == trickled["commands"]["sent"]
    assert trickled["healthz"]["failed"] == 0
    assert trickled["cut_by_server"] >= trickled["connections"]  # each slow body cut at its deadline, not held
    assert set(trickled["answers_before_cut"]) <= {"408"}  # JSON keys
    assert granian["log"]["tracebacks"] == 0


@pytest.mark.e2e
def test_apps_status(tmp_path: Path) -> None:
    figures = run_smoke("apps_status", tmp_path)
    (apps,) = figures["apps"]["rounds"]
    assert apps["acked_200"] == apps["answered"] == len(apps["reply_ms_each"]) > 0
    assert apps["cold"]["desk_calls"]["prod"] >= 1 and apps["cold"]["desk_calls"]["staging"] >= 1
    assert all("staging: read-timeout" in kind for kind in apps["reply_kinds"])  # the hanging app, named
    assert apps["more_than_one_answer"] == 0 and apps["tracebacks_in_log"] == 0
    (status,) = figures["status"]["rounds"]
    cold, warm = status["cold"], status["warm"]
    assert cold["status"] == 200 and "Checking" in cold["ack_text"]  # acked with what is being checked
    assert cold["report_is_readiness"] and cold["report_ms"] > 0 and cold["answers"] == 1
    assert cold["desk_calls"]["list"] >= 1 and cold["desk_calls"]["list_faq"] >= 1
    assert warm["commands"] > 0 and warm["answered_in_ack"] == warm["acked_200"] == warm["commands"]
    assert status["desk_calls_after_all"] == cold["desk_calls"]  # the warm acks never reached Desk
    assert status["tracebacks_in_log"] == 0


@pytest.mark.e2e
def test_watch_load(tmp_path: Path) -> None:
    """2 processes, 2 apps, 3 channels, a 10 s interval: the benchmark's own targets, asserted."""
    figures = run_smoke("watch_load", tmp_path)
    assert figures["settings"]["processes"] == 2 and figures["settings"]["channels"] == 3
    assert len(figures["changes"]) >= 2  # both apps changed at least once
    assert all(n <= 1 for n in figures["max_desk_calls_per_slot"].values())  # one poll per app per interval
    assert figures["alerts_exactly_once"] == figures["alerts_expected"] == 3 * len(figures["changes"])
    assert figures["alerts_duplicated"] == figures["alerts_unmatched"] == 0
    assert figures["latency_s"]["max"] <= figures["settings"]["interval_s"] + 5
    assert figures["tracebacks_in_log"] == 0
    assert all(t["met"] for t in figures["targets"])


@pytest.mark.e2e
def test_views_open(tmp_path: Path) -> None:
    """Ten settings commands while Desk answers in 0.5 s: each modal opened with its trigger_id, then filled."""
    figures = run_smoke("views_open", tmp_path)
    (scenario,) = figures["scenarios"]
    assert scenario["commands"] == scenario["acked_200"] == scenario["opened"] == 10
    assert scenario["refused_opens"] == 0 and scenario["shown"] == {"form": 10}  # every modal filled with the form
    assert scenario["desk_calls"]["desc_robot_config"] == 10  # one read per modal, the list from the cache
    assert scenario["views_open"]["max_ms"] < scenario["fill"]["p50_ms"]  # opened before Desk answered
    assert scenario["tracebacks_in_log"] == 0


def test_report_renders_the_document_from_the_figures(tmp_path: Path) -> None:
    """The document is built from whatever figures exist; here, from hand-made ones of each kind."""
    from bench import report

    (tmp_path / "start_size.json").write_text(
        json.dumps(
            {
                "benchmark": "start_size",
                "smoke": False,
                "finished_at": "2026-01-01T00:00:00Z",
                "machine": {"cpu": "Test CPU", "cores": 2, "memory_gb": 4.0, "os": "Linux", "python": "3.11",
                            "libraries": {"slack-bolt": "1.30.0"}, "wrk": None, "redis-server": None},
                "settings": {"starts": 1, "commands": 10, "workers": 1, "first_reading_after": 5},
                "start_s": {"each": [0.8], "median": 0.8, "max": 0.8},
                "commands_sent": 10,
                "answered": 10,
                "workers": [{"pid": 1, "rss_mb_at_boot": 40.0, "rss_mb_after_first": 60.0, "rss_mb": 61.0,
                             "pss_mb": 50.0}],
                "master": {"rss_mb": 30.0, "pss_mb": 20.0},
                "targets": [{"target": "start to /healthz 200 < 1.5 s", "measured": "0.80 s", "met": True}],
            }
        )
    )
    text = report.render(tmp_path)
    assert "Test CPU, 2 cores" in text and "slack-bolt 1.30.0" in text
    assert "| 5. Start and size | start to /healthz 200 < 1.5 s | 0.80 s | yes |" in text
    assert "## 1. Ack path" not in text  # no figures, no section


def test_the_prose_passages_are_the_ones_the_report_asks_for() -> None:
    """A passage renamed on one side only, or a note for no benchmark, would silently drop text from the page."""
    import ast

    from bench import report

    source = ast.parse((ROOT / "bench" / "report.py").read_text(encoding="utf-8"))
    asked = {
        node.args[0].value
        for node in ast.walk(source)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "passage"
        and isinstance(node.args[0], ast.Constant)
    }
    passages = report._passages()
    notes = {name for name in passages if name.startswith("why missed: ")}
    assert asked and asked <= set(passages)
    assert set(passages) == asked | notes
    for name in notes:
        benchmark, piece = name.removeprefix("why missed: ").split(": ", 1)
        assert benchmark in report.BENCHMARKS and piece in report.why_missed(benchmark)
    assert all(passages.values())


@pytest.mark.parametrize(
    "name",
    ["ack_path", "hung_upstream", "cold_burst", "refresh_storm", "start_size", "soak", "front_door", "apps_status",
     "watch_load", "views_open"],
)
def test_every_benchmark_is_in_the_report(name: str) -> None:
    from bench import report

    assert name in report.BENCHMARKS and report.TITLES[name]
