"""Benchmark 8, several apps and readiness: `apps` with one of three apps hanging, and `status` cold and warm.

`apps`: the bot serves three Desk apps (DESK_APPS=prod,staging,eu, each with its own
SDKAppID, key and emulator); the `staging` emulator hangs every call for 10 s, far past
DESK_TIMEOUT (2 s). On a freshly started bot (cold caches) `/desk-languages apps` is sent
20 times, one after the other (each as soon as the previous reply arrived); the first is
the cold one, so the bot is started three times. Timed: from the command to its reply at
the response_url. Counted at each emulator: Desk calls after the cold command and after
all 20.

`status`: one app with seven languages (every tag Desk supports, so the checks need two
rate windows); its emulator answers every `list_faq` and `desc_robot_config` call 50 ms
late (Fault `late`, per API; the list itself is not delayed). On a freshly started bot (three starts) a cold `status` is
acked with the "checking" notice and its report follows through the response_url:
timed from the command to the report, with the Desk calls of each API. Then 200 more
`status` commands, one at a time over one keep-alive connection: each must be answered
inside its ack (the report, whose text starts "Desk chatbot readiness"), and the acks
are timed; then wrk sends a signed `status` for a few seconds (2 connections).

The emulators run in the benchmark's process (`DeskEmulator`, as tests/test_several_apps.py
does), since `python -m bot sandbox` has one fixed SDKAppID and key and its control API
does not say which API a call was for; the bot is its own process as everywhere else.

Targets: the cold `apps` answered within DESK_TIMEOUT + 1 s, with at most one Desk call
for each of prod and eu; the cold `status` report in under 2 s, with 7 `list_faq` + 7
`desc_robot_config` calls (14) and 1 list; every warm `status` answered in its ack, ack
p99 < 100 ms.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.figures import Options, main_for, print_table, print_targets, spread_ms, target
from bench.load import CommandClient, deliveries, message_text, run_wrk, wait_for_answers, wrk_available
from bench.processes import ServerProcess, bot_environment, fake_slack, fresh_round, tracebacks, workspace
from bot.desk.languages import SUPPORTED_TAGS
from bot.sandbox.desk_emulator import CONFIG, FAQ, LIST, DeskEmulator, Fault, sample_for_app
from bot.sandbox.slack_emulator import FakeSlack, slash_command_body

NAME = "apps_status"
APPS = {  # name: (SDKAppID, key); made up, the emulators' own
    "prod": (1400000201, "bench-prod-key-0123456789abcdef"),
    "staging": (1400000202, "bench-staging-key-0123456789abcdef"),
    "eu": (1400000203, "bench-eu-key-0123456789abcdef"),
}
HANGING = "staging"
HANG_S = 10.0
CHECK_LATENCY_S = 0.05
READINESS_HEAD = "Desk chatbot readiness"
TARGET_STATUS_COLD_S = 2.0
TARGET_ACK_P99_MS = 100.0
PLAIN_DESK = ("DESK_SDKAPPID", "DESK_SECRET_KEY", "DESK_API_URL")  # the apps bring their own


def run(options: Options) -> dict[str, Any]:
    desk_timeout = 1.0 if options.smoke else 2.0
    starts = 1 if options.smoke else 3
    with workspace(NAME) as work, fake_slack() as fake:
        apps = _apps(options, desk_timeout, starts, fake, work)
        status = _status(options, desk_timeout, starts, fake, work)
    targets = _targets(apps, status, desk_timeout)
    figures = {
        "settings": {
            "desk_timeout_s": desk_timeout,
            "bot_starts": starts,
            "apps": list(APPS),
            "hanging_app": HANGING,
            "hang_s": HANG_S,
            "apps_commands_per_start": apps["commands_per_start"],
            "status_languages": status["languages"],
            "check_latency_s": CHECK_LATENCY_S,
            "warm_status_acks_per_start": status["warm_per_start"],
            "wrk_seconds": status["wrk_seconds"],
        },
        "apps": apps,
        "status": status,
        "targets": targets,
    }
    _print(apps, status, targets)
    return figures


# --- apps, one app hanging ---------------------------------------------------------------------------


def _apps(options: Options, desk_timeout: float, starts: int, fake: FakeSlack, work: Path) -> dict[str, Any]:
    per_start = 3 if options.smoke else 20
    emulators = {
        name: DeskEmulator(sdkappid=sdkappid, key=key, languages=sample_for_app(index))
        for index, (name, (sdkappid, key)) in enumerate(APPS.items())
    }
    rounds: list[dict[str, Any]] = []
    try:
        for emulator in emulators.values():
            emulator.start()
        env = _apps_env(emulators, fake, work, desk_timeout)
        for number in range(1, starts + 1):
            fake.reset()
            for emulator in emulators.values():
                emulator.clear_faults()
                emulator.reset_calls()
            emulators[HANGING].inject(Fault(hang=HANG_S), times=-1)
            rounds.append(_apps_round(number, per_start, desk_timeout, env, emulators, fake, work))
            print(f"  apps, start {number}: cold reply {rounds[-1]['cold']['reply_ms']:,.0f} ms, Desk calls "
                  f"{rounds[-1]['cold']['desk_calls']}", flush=True)
    finally:
        for emulator in emulators.values():
            emulator.stop()
    warm = [ms for r in rounds for ms in r["reply_ms_each"][1:]]
    return {
        "commands_per_start": per_start,
        "rounds": rounds,
        "cold_reply_ms": [r["cold"]["reply_ms"] for r in rounds],
        "warm_reply": spread_ms([ms / 1000 for ms in warm]),
    }


def _apps_env(emulators: dict[str, DeskEmulator], fake: FakeSlack, work: Path, desk_timeout: float) -> dict[str, str]:
    env = bot_environment(emulators["prod"], fake, work, DESK_TIMEOUT=desk_timeout)  # type: ignore[arg-type]
    for variable in PLAIN_DESK:
        env.pop(variable, None)
    env["DESK_APPS"] = ",".join(emulators)
    for name, emulator in emulators.items():
        prefix = f"DESK_{name.upper()}_"
        env[f"{prefix}SDKAPPID"] = str(emulator.sdkappid)
        env[f"{prefix}SECRET_KEY"] = APPS[name][1]
        env[f"{prefix}API_URL"] = emulator.base_url
    return env


def _apps_round(
    number: int, count: int, desk_timeout: float, env: dict[str, str], emulators: dict[str, DeskEmulator],
    fake: FakeSlack, work: Path,
) -> dict[str, Any]:
    replies: list[dict[str, Any]] = []
    cold_calls: dict[str, int] = {}
    with ServerProcess(env, work) as server:
        client = CommandClient(server.port, fake, timeout=15)
        for index in range(count):
            sent = client.send("apps")
            wait_for_answers(fake, {sent.name}, timeout=desk_timeout + 8)
            delivery = deliveries(fake).get(sent.name)
            reply = delivery.accepted[0] if delivery and delivery.accepted else None
            replies.append(
                {
                    "status": sent.status,
                    "ack_ms": round(sent.ack_s * 1000, 2),
                    "reply_ms": round((reply.at - sent.sent_at) * 1000, 1) if reply else None,
                    "answers": len(delivery.accepted) if delivery else 0,
                    "kind": _apps_kind(reply.body) if reply else "none",
                }
            )
            if index == 0:
                cold_calls = {name: len(e.calls) for name, e in emulators.items()}
        calls = {name: len(e.calls) for name, e in emulators.items()}
        server.stop()
        log = server.log_text()
    cold = replies[0]
    return {
        "start": number,
        "cold": {**cold, "desk_calls": cold_calls},
        "reply_ms_each": [r["reply_ms"] for r in replies],
        "answered": sum(r["reply_ms"] is not None for r in replies),
        "answered_in_time": sum(r["reply_ms"] is not None and r["reply_ms"] <= (desk_timeout + 1) * 1000
                                for r in replies),
        "acked_200": sum(r["status"] == 200 for r in replies),
        "ack": spread_ms([r["ack_ms"] / 1000 for r in replies]),
        "more_than_one_answer": sum(r["answers"] > 1 for r in replies),
        "reply_kinds": dict(Counter(r["kind"] for r in replies)),
        "desk_calls_after_all": calls,
        "tracebacks_in_log": tracebacks(log),
    }


def _apps_kind(body: dict[str, Any]) -> str:
    """What the user saw: prod and eu listed and staging failing with `read-timeout`, or else what."""
    text = message_text(body)
    if "Desk apps" not in text:
        return "other"
    summary = str(body.get("text") or "")
    failing = f"`{HANGING}`" in text and "read-timeout" in text
    return f"{summary} ({HANGING}: read-timeout)" if failing else summary


# --- status, cold and warm ------------------------------------------------------------------------


def _status(options: Options, desk_timeout: float, starts: int, fake: FakeSlack, work: Path) -> dict[str, Any]:
    warm_count = 20 if options.smoke else 200
    wrk_seconds = 1.0 if options.smoke else 5.0
    rounds: list[dict[str, Any]] = []
    warm_ack_s: list[float] = []
    wrk: dict[str, Any] | None = None
    # Every supported tag: more than the default sample's 5, as a larger package holds (docs/desk-api.md §8).
    emulator = DeskEmulator(languages=[(tag, int(tag == "en")) for tag in SUPPORTED_TAGS])
    languages = len(emulator.languages)
    try:
        emulator.start()
        env = bot_environment(emulator, fake, work, DESK_TIMEOUT=desk_timeout)  # type: ignore[arg-type]
        for number in range(1, starts + 1):
            fresh_round(fake, emulator)
            for api in (FAQ, CONFIG):
                emulator.inject(Fault(late=CHECK_LATENCY_S, api=api), times=-1)
            last = number == starts
            result, acks, wrk_run = _status_round(
                number, warm_count, wrk_seconds if last else 0.0, desk_timeout, env, emulator, fake, work
            )
            rounds.append(result)
            warm_ack_s += acks
            wrk = wrk_run or wrk
            print(f"  status, start {number}: cold report {result['cold']['report_ms']} ms, Desk calls "
                  f"{result['cold']['desk_calls']}, warm in ack {result['warm']['answered_in_ack']}/"
                  f"{result['warm']['commands']}", flush=True)
    finally:
        emulator.stop()
    return {
        "languages": languages,
        "warm_per_start": warm_count,
        "wrk_seconds": wrk_seconds if wrk is not None else None,
        "rounds": rounds,
        "cold_report_ms": [r["cold"]["report_ms"] for r in rounds],
        "warm_ack": spread_ms(warm_ack_s),
        "warm_commands": len(warm_ack_s),
        "warm_answered_in_ack": sum(r["warm"]["answered_in_ack"] for r in rounds),
        "wrk": wrk,
    }


def _status_round(
    number: int, warm_count: int, wrk_seconds: float, desk_timeout: float, env: dict[str, str],
    emulator: DeskEmulator, fake: FakeSlack, work: Path,
) -> tuple[dict[str, Any], list[float], dict[str, Any] | None]:
    wrk: dict[str, Any] | None = None
    with ServerProcess(env, work) as server:
        client = CommandClient(server.port, fake, timeout=15)
        cold = client.send("status")
        wait_for_answers(fake, {cold.name}, timeout=2 * (desk_timeout + 1) + 8)
        delivery = deliveries(fake).get(cold.name)
        report = delivery.accepted[0] if delivery and delivery.accepted else None
        cold_calls = _calls_by_api(emulator)
        warm = [client.send("status") for _ in range(warm_count)]
        in_ack = [_ack_text(s.body).startswith(READINESS_HEAD) for s in warm if s.status == 200]
        if wrk_seconds and wrk_available():
            body = slash_command_body("status", response_url=fake.response_url("wrk"))
            wrk = run_wrk(server.port, body, connections=2, duration=wrk_seconds, workdir=work)
            after = client.send("status")
            wrk["answered_in_ack_after"] = _ack_text(after.body).startswith(READINESS_HEAD)
        calls_after = _calls_by_api(emulator)
        posts = len(fake.responses())
        server.stop()
        log = server.log_text()
    result = {
        "start": number,
        "cold": {
            "status": cold.status,
            "ack_ms": round(cold.ack_s * 1000, 2),
            "ack_text": _ack_text(cold.body)[:120],
            "report_ms": round((report.at - cold.sent_at) * 1000, 1) if report else None,
            "report_is_readiness": bool(report) and str(report.body.get("text", "")).startswith(READINESS_HEAD),
            "report_summary": str(report.body.get("text", ""))[:160] if report else None,
            "answers": len(delivery.accepted) if delivery else 0,
            "desk_calls": cold_calls,
            "desk_call_offsets_ms": _offsets(emulator, cold.sent_at),
        },
        "warm": {
            "commands": len(warm),
            "acked_200": sum(s.status == 200 for s in warm),
            "answered_in_ack": sum(in_ack),
            "ack": spread_ms([s.ack_s for s in warm if s.status]),
        },
        "desk_calls_after_all": calls_after,
        "response_url_posts": posts,
        "tracebacks_in_log": tracebacks(log),
    }
    return result, [s.ack_s for s in warm if s.status], wrk


def _calls_by_api(emulator: DeskEmulator) -> dict[str, int]:
    counted = Counter(call.api for call in emulator.calls)
    return {"list": counted[LIST], "list_faq": counted[FAQ], "desc_robot_config": counted[CONFIG],
            "all": sum(counted.values())}


def _offsets(emulator: DeskEmulator, since: float) -> dict[str, list[float]]:
    """When each Desk call arrived, in ms after the command was sent, by API."""
    found: dict[str, list[float]] = {}
    for call in emulator.calls:
        found.setdefault(call.api, []).append(round((call.at - since) * 1000, 1))
    return found


def _ack_text(body: bytes) -> str:
    try:
        return str(json.loads(body).get("text") or "")
    except (ValueError, AttributeError):
        return ""


# --- targets and the table ------------------------------------------------------------------------


def _targets(apps: dict[str, Any], status: dict[str, Any], desk_timeout: float) -> list[dict[str, Any]]:
    budget_ms = (desk_timeout + 1) * 1000
    cold_apps = [ms or float("inf") for ms in apps["cold_reply_ms"]]
    prod_eu = [r["cold"]["desk_calls"][name] for r in apps["rounds"] for name in ("prod", "eu")]
    prod_eu_all = [r["desk_calls_after_all"][name] for r in apps["rounds"] for name in ("prod", "eu")]
    every = apps["rounds"]
    cold_status = [ms or float("inf") for ms in status["cold_report_ms"]]
    calls = [r["cold"]["desk_calls"] for r in status["rounds"]]
    languages = status["languages"]
    expected = {"list": 1, "list_faq": languages, "desc_robot_config": languages}
    warm_p99 = status["warm_ack"]["p99_ms"]
    return [
        target(
            f"apps, cold, {HANGING} hanging: reply within DESK_TIMEOUT + 1 s = {budget_ms / 1000:g} s",
            f"{max(cold_apps):,.0f} ms (slowest of {len(cold_apps)} starts)",
            max(cold_apps) <= budget_ms,
        ),
        target(
            "apps, cold: <= 1 Desk call each for prod and eu",
            f"{max(prod_eu)} (most), {max(prod_eu_all)} after all {apps['commands_per_start']} commands",
            max(prod_eu) <= 1,
        ),
        target(
            f"apps: every command answered once within {budget_ms / 1000:g} s",
            f"{sum(r['answered_in_time'] for r in every)}/{sum(len(r['reply_ms_each']) for r in every)}",
            all(r["answered_in_time"] == len(r["reply_ms_each"]) and not r["more_than_one_answer"] for r in every),
        ),
        target(
            f"status, cold: the report at the response_url in < {TARGET_STATUS_COLD_S:g} s",
            f"{max(cold_status):,.0f} ms (slowest of {len(cold_status)} starts)",
            max(cold_status) < TARGET_STATUS_COLD_S * 1000
            and all(r["cold"]["report_is_readiness"] for r in status["rounds"]),
        ),
        target(
            f"status, cold: {2 * languages} checks ({languages} list_faq + {languages} desc_robot_config) + 1 list",
            "; ".join(f"{c['list_faq']} + {c['desc_robot_config']} + {c['list']}" for c in calls),
            all({k: c[k] for k in expected} == expected for c in calls),
        ),
        target(
            f"status, warm: answered in the ack, ack p99 < {TARGET_ACK_P99_MS:g} ms",
            f"{status['warm_answered_in_ack']}/{status['warm_commands']} in the ack, p99 "
            f"{warm_p99 if warm_p99 is not None else float('nan'):,.2f} ms",
            status["warm_answered_in_ack"] == status["warm_commands"] > 0
            and warm_p99 is not None and warm_p99 < TARGET_ACK_P99_MS,
        ),
    ]


def _print(apps: dict[str, Any], status: dict[str, Any], targets: list[dict[str, Any]]) -> None:
    print_table(
        f"apps ({', '.join(APPS)}; {HANGING} hangs every call {HANG_S:g} s)",
        ["start", "cold reply ms", "cold calls prod/staging/eu", "replies p50 ms", "replies max ms", "in time",
         "calls after all prod/staging/eu"],
        [
            [r["start"], r["cold"]["reply_ms"], "/".join(str(r["cold"]["desk_calls"][n]) for n in APPS),
             spread_ms([ms / 1000 for ms in r["reply_ms_each"] if ms is not None])["p50_ms"],
             max((ms for ms in r["reply_ms_each"] if ms is not None), default=None),
             f"{r['answered_in_time']}/{len(r['reply_ms_each'])}",
             "/".join(str(r["desk_calls_after_all"][n]) for n in APPS)]
            for r in apps["rounds"]
        ],
    )
    print_table(
        f"status ({status['languages']} languages, checks {CHECK_LATENCY_S * 1000:.0f} ms late)",
        ["start", "cold ack ms", "cold report ms", "list_faq", "desc_robot_config", "list", "warm in ack",
         "warm ack p50 ms", "warm ack p99 ms"],
        [
            [r["start"], r["cold"]["ack_ms"], r["cold"]["report_ms"], r["cold"]["desk_calls"]["list_faq"],
             r["cold"]["desk_calls"]["desc_robot_config"], r["cold"]["desk_calls"]["list"],
             f"{r['warm']['answered_in_ack']}/{r['warm']['commands']}", r["warm"]["ack"]["p50_ms"],
             r["warm"]["ack"]["p99_ms"]]
            for r in status["rounds"]
        ],
    )
    if status["wrk"]:
        w = status["wrk"]
        print(f"\nwrk, warm status, {w['connections']} connections: {w['rps']:,.0f} req/s, p50 {w['p50_ms']} ms, "
              f"p99 {w['p99_ms']} ms, errors {w['errors']}")
    print_targets(targets)


def main(argv: Sequence[str] | None = None) -> int:
    return main_for(NAME, __doc__.splitlines()[0], run, argv)


if __name__ == "__main__":
    sys.exit(main())
