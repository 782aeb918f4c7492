"""Benchmark 6, soak: 2,000 commands of every kind while faults are injected at random into Desk and Slack.

The bot runs with a short cache TTL (3 s) so that Desk is called about once a
second and the faults bite. While commands arrive at a steady rate, a fault thread
injects at random, through the emulator's control API and FakeSlack's scripts:
- Desk: an error code (rate-limited, transient, re-sign, permanent), a hang longer
  than DESK_TIMEOUT, an HTTP 502, or a truncated JSON body, each for one call;
- Slack: HTTP 500 on the next response_url post (one pending at a time).
The bot only calls chat.postMessage for channel digests, so the soak also makes one
digest fall due mid-run (DIGEST_CHANNEL/DIGEST_SCHEDULE, the in-process ticker on),
and its first post attempt gets a 429 with Retry-After.

Counted: commands sent, acks (200 within 3 s), HTTP 5xx, answers (inside the ack,
or accepted at the command's response_url) per command, tracebacks and ERROR lines
in the server's log, the digest posts. Target: every command acknowledged and
answered exactly once, zero 5xx, zero tracebacks, the digest posted once.
"""

from __future__ import annotations

import json
import random
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.harness import (
    CommandClient,
    EmulatorProcess,
    Options,
    ServerProcess,
    bot_environment,
    deliveries,
    fake_slack,
    keep_log,
    main_for,
    message_text,
    print_table,
    print_targets,
    send_at_rate,
    spread_ms,
    target,
    tracebacks,
    wait_for_answers,
    workspace,
)
from bot.slack_sandbox import FakeSlack

NAME = "soak"
DESK_TIMEOUT = 2.0
CACHE_TTL = 3
DIGEST_CHANNEL = "C0SOAKDIGEST"
MIX = (
    ("",) * 9 + ("refresh",) * 3 + ("share", "share", "default", "default", "help", "lsit", "digest")
    + ("share please",)
)
# One Desk fault per pick; codes by retry class: rate-limited, transient, re-sign, permanent.
DESK_FAULTS: tuple[dict[str, Any], ...] = (
    {"code": -14},
    {"code": 60008},
    {"code": 70500},
    {"code": 141002},
    {"code": 70001},
    {"code": 60004},
    {"hang": DESK_TIMEOUT + 1.0},
    {"http_status": 502},
    {"truncated": True},
)
TICK_S = 0.25
DESK_FAULT_EVERY_S = 4.0  # on average; Desk is called about once a second
SLACK_500_EVERY_S = 2.0  # on average; a few response_url posts a second
_ERROR_CODE = re.compile(r"\*Error\* `([^`]+)`")


def run(options: Options) -> dict[str, Any]:
    count, seconds = (60, 4.0) if options.smoke else (2000, 150.0)
    chooser = random.Random(2026)
    texts = [chooser.choice(MIX) for _ in range(count)]
    with workspace(NAME) as work, fake_slack() as fake, EmulatorProcess() as emulator:
        settings: dict[str, Any] = {"DESK_TIMEOUT": DESK_TIMEOUT, "DESK_CACHE_TTL": CACHE_TTL}
        digest_due = None
        if not options.smoke:  # a digest falls due only at a minute boundary: not within a smoke run
            digest_due = _next_minute(datetime.now(UTC) + timedelta(seconds=40))
            settings.update(
                DIGEST_TICKER=1, DIGEST_CHANNEL=DIGEST_CHANNEL, DIGEST_SCHEDULE=f"daily {digest_due:%H:%M} UTC"
            )
            fake.script("chat.postMessage", status=429, headers={"Retry-After": "1"})
        with ServerProcess(bot_environment(emulator, fake, work, **settings), work) as server:
            warm = CommandClient(server.port, fake).send("")
            wait_for_answers(fake, {warm.name}, timeout=10)
            emulator.reset_calls()
            injected: Counter[str] = Counter()
            stop = threading.Event()
            injector = threading.Thread(
                target=_inject_faults, args=(emulator, fake, stop, injected, random.Random(7)), daemon=True
            )
            started = time.monotonic()
            injector.start()
            sent = send_at_rate(CommandClient(server.port, fake), texts, count / seconds, threads=32)
            stop.set()
            injector.join()
            sending_s = time.monotonic() - started
            emulator.clear_faults()
            wait_for_answers(fake, {s.name for s in sent if s.status == 200 and not s.answered_in_ack}, timeout=30)
            if digest_due is not None:  # the ticker runs a couple of seconds after the minute
                until_due = max(0.0, digest_due.timestamp() - time.time())
                fake.wait_for(lambda f: _digests_posted(f) > 0, timeout=until_due + 15)
            time.sleep(1.0)  # anything late (a duplicate) has time to show up
            got = deliveries(fake)
            desk_calls = emulator.calls()
            slack_calls = fake.calls()
            server.stop()
            log = server.log_text()
    keep_log(NAME, options, log)
    figures = _figures(sent, got, desk_calls, slack_calls, log, injected, digest_due)
    figures["settings"] = {
        "commands": count,
        "seconds": seconds,
        "rate_per_s": round(count / seconds, 1),
        "desk_timeout_s": DESK_TIMEOUT,
        "cache_ttl_s": CACHE_TTL,
        "mix": dict(Counter(t or "list" for t in MIX)),
        "desk_faults": [", ".join(f"{k}={v}" for k, v in fault.items()) for fault in DESK_FAULTS],
        "desk_fault_every_s": DESK_FAULT_EVERY_S,
        "response_url_500_every_s": SLACK_500_EVERY_S,
        "digest_due": None if digest_due is None else digest_due.isoformat(),
    }
    figures["sending_seconds"] = round(sending_s, 1)
    _print(figures)
    return figures


def _inject_faults(
    emulator: EmulatorProcess, fake: FakeSlack, stop: threading.Event, injected: Counter[str], chooser: random.Random
) -> None:
    upcoming: list[dict[str, Any]] = []
    while not stop.wait(TICK_S):
        if chooser.random() < TICK_S / DESK_FAULT_EVERY_S:
            if not upcoming:  # every kind of fault in turn, in a random order each round
                upcoming = list(DESK_FAULTS)
                chooser.shuffle(upcoming)
            fault = upcoming.pop()
            emulator.inject(times=1, **fault)
            injected["desk " + ", ".join(f"{k}={v}" for k, v in fault.items())] += 1
        if chooser.random() < TICK_S / SLACK_500_EVERY_S and _pending_500s(fake, injected) == 0:
            fake.script("response_url", status=500)
            injected["slack response_url 500"] += 1


def _pending_500s(fake: FakeSlack, injected: Counter[str]) -> int:
    """Scripted 500s not yet used. One at a time: queued ones would hit the same post's retries
    back to back, a longer Slack outage than "a 500" (three in a row exhaust the bot's retries)."""
    used = sum(1 for c in fake.calls("response_url") if c.status == 500)
    return injected["slack response_url 500"] - used


def _next_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _digests_posted(fake: FakeSlack) -> int:
    return sum(1 for c in fake.calls("chat.postMessage") if c.status == 200 and c.body.get("channel") == DIGEST_CHANNEL)


def _figures(
    sent: list[Any], got: dict[str, Any], desk_calls: list[dict[str, Any]], slack_calls: list[Any], log: str,
    injected: Counter[str], digest_due: datetime | None,
) -> dict[str, Any]:
    kinds: Counter[str] = Counter()
    exactly_once = twice = never = 0
    answer_s = []
    for one in sent:
        delivery = got.get(one.name)
        accepted = len(delivery.accepted) if delivery is not None else 0
        answers = accepted + (1 if one.answered_in_ack else 0)
        exactly_once += answers == 1
        twice += answers > 1
        never += answers == 0
        if one.answered_in_ack:
            kinds["in the ack: " + _kind(_json(one.body))] += 1
            answer_s.append(one.ack_s)
        elif delivery is not None and accepted:
            kinds["response_url: " + _kind(delivery.accepted[0].body)] += 1
            answer_s.append(delivery.accepted[0].at - one.sent_at)
    unanswered = [
        {
            "text": one.text,
            "ack_status": one.status,
            "ack_body": one.body[:80].decode("utf-8", "replace"),
            "response_url_refused": [c.status for c in got[one.name].refused] if one.name in got else [],
            "sent_at": round(one.sent_at, 3),
        }
        for one in sent
        if not one.answered_in_ack and (one.name not in got or not got[one.name].accepted)
    ]
    refused = sum(len(d.refused) for d in got.values())
    digest_posts = [c for c in slack_calls if c.method == "chat.postMessage"]
    error_lines = [line for line in log.splitlines() if " ERROR " in line or line.startswith("ERROR")]
    commands = len(sent)
    fivexx = sum(500 <= s.status < 600 for s in sent)
    figures: dict[str, Any] = {
        "commands_sent": commands,
        "acked": sum(s.acked for s in sent),
        "http_5xx": fivexx,
        "no_http_answer": sum(s.status == 0 for s in sent),
        "ack": spread_ms([s.ack_s for s in sent if s.status]),
        "answered_in_ack": sum(s.answered_in_ack for s in sent),
        "answered_via_response_url": sum(bool(d.accepted) for d in got.values()),
        "answered_exactly_once": exactly_once,
        "answered_more_than_once": twice,
        "never_answered": never,
        "never_answered_detail": unanswered[:10],
        "answer": spread_ms(answer_s),
        "answer_kinds": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
        "response_url_posts_refused": refused,
        "faults_injected": dict(sorted(injected.items())),
        "desk_calls": len(desk_calls),
        "desk_outcomes": dict(Counter(str(c["outcome"]) for c in desk_calls).most_common()),
        "digest": {
            "due": None if digest_due is None else digest_due.isoformat(),
            "post_attempts": len(digest_posts),
            "answered_429": sum(c.status == 429 for c in digest_posts),
            "posted": sum(c.status == 200 for c in digest_posts),
        },
        "tracebacks_in_log": tracebacks(log),
        "error_lines_in_log": len(error_lines),
        "error_lines_sample": error_lines[:5],
        "warning_lines_in_log": sum(" WARNING " in line for line in log.splitlines()),
    }
    targets = [
        target("every command acknowledged (200 within 3 s)", f"{figures['acked']}/{commands}",
               figures["acked"] == commands),
        target("every command answered exactly once", f"{exactly_once}/{commands} (never {never}, twice {twice})",
               exactly_once == commands),
        target("zero HTTP 5xx", str(fivexx), fivexx == 0),
        target("zero tracebacks in the server log", str(figures["tracebacks_in_log"]),
               figures["tracebacks_in_log"] == 0),
    ]
    if digest_due is not None:
        posted = figures["digest"]["posted"]
        targets.append(target("the digest posted exactly once (after a 429)", str(posted), posted == 1))
    figures["targets"] = targets
    return figures


def _json(raw: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _kind(message: dict[str, Any]) -> str:
    """What the user saw, from the message's fallback text and blocks."""
    fallback = str(message.get("text") or "")
    code = _ERROR_CODE.search(message_text(message))
    if fallback.startswith("Usage:"):
        return "help"
    if fallback.startswith("Unknown option"):
        return "unknown option"
    if "showing the list from" in message_text(message):
        return f"stale list ({code.group(1) if code else '?'})"
    if code:
        return f"error {code.group(1)}"
    if fallback.startswith(("Desk chatbot languages", "Desk chatbot default language")):
        return "list"
    if "digest" in fallback.lower():
        return "digest"
    return "other"


def _print(figures: dict[str, Any]) -> None:
    print_table(
        "Soak",
        ["sent", "acked", "5xx", "ack p99 ms", "in ack", "via response_url", "exactly once", "never", "twice",
         "tracebacks", "Desk calls"],
        [[
            figures["commands_sent"], figures["acked"], figures["http_5xx"], figures["ack"]["p99_ms"],
            figures["answered_in_ack"], figures["answered_via_response_url"], figures["answered_exactly_once"],
            figures["never_answered"], figures["answered_more_than_once"], figures["tracebacks_in_log"],
            figures["desk_calls"],
        ]],
    )
    print_table("Answers by kind", ["kind", "commands"], list(figures["answer_kinds"].items()))
    print_table("Faults injected", ["fault", "times"], list(figures["faults_injected"].items()))
    print_table("Desk calls by outcome", ["outcome", "calls"], list(figures["desk_outcomes"].items()))
    for lost in figures["never_answered_detail"]:
        print(f"  never answered: {lost}")
    print(f"\ndigest: {figures['digest']}; response_url posts refused: {figures['response_url_posts_refused']}; "
          f"ERROR lines: {figures['error_lines_in_log']}")
    for line in figures["error_lines_sample"]:
        print(f"  {line[:160]}")
    print_targets(figures["targets"])


def main(argv: Sequence[str] | None = None) -> int:
    return main_for(NAME, __doc__.splitlines()[0], run, argv)


if __name__ == "__main__":
    sys.exit(main())
