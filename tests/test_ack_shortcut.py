"""The acks the edge answers itself (bot/slack/ack_shortcut.py) against Bolt's dispatch of the
same requests: two bots over real sockets, one with WEB_ACK_SHORTCUT on (the default) and one
with it off, the same signed requests sent to each; status, the headers that matter, the body
byte for byte, the metrics each request moved and the log lines must all be the same.

The form parser the shortcut uses instead of `urllib.parse.parse_qsl` is checked against it on
any text (hypothesis), without servers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from bot.config import load_settings
from bot.desk.client import REFRESH_COALESCE
from bot.sandbox.desk_emulator import DeskEmulator
from bot.sandbox.slack_emulator import FakeSlack, sign, slash_command_body
from bot.slack.ack_shortcut import COMMAND_FIELD, parse_form
from tests.support.slack_harness import BOT_TOKEN, SIGNING_SECRET, BotUnderTest, slack_env
from tests.support.tiers import e2e_fixture

PROD, STAGING = 1400000201, 1400000202
KEYS = {PROD: "prod-key-0123456789abcdef0", STAGING: "staging-key-0123456789abcdef"}
ADMIN, MEMBER = "U0ADMIN0001", "U0MEMBER001"
# prod declares Indonesian instead of Vietnamese, so its status carries a drift line
DECLARED = '[prod]\nlanguages = ["en", "zh", "ja", "id"]\n'
HOSTILE = "<!channel> *bold* <https://evil.example|click> &amp; `code`"


# --- the parser, fast tier ------------------------------------------------------------------------

FORM_PIECES = st.sampled_from(["a", "text", "=", "&", "+", "%", "%2", "%2F", "%C3", "%A9", "%zz", "é", ";", " ", ""])


@settings(max_examples=400)
@given(st.text(max_size=80) | st.lists(FORM_PIECES, max_size=24).map("".join))
def test_the_form_parser_reads_any_text_as_parse_qsl_does(text: str) -> None:
    assert parse_form(text) == dict(parse_qsl(text, keep_blank_values=True))


@settings(max_examples=100)
@given(st.dictionaries(st.text(max_size=12), st.text(max_size=40), max_size=14))
def test_the_form_parser_reads_what_urlencode_writes(fields: dict[str, str]) -> None:
    assert parse_form(urlencode(fields)) == fields


# --- both paths over real sockets -----------------------------------------------------------------


@e2e_fixture
def emulators() -> Iterator[dict[str, DeskEmulator]]:
    started = {
        "prod": DeskEmulator(sdkappid=PROD, key=KEYS[PROD], languages=[("en", 1), ("zh", 0), ("ja", 0), ("vi", 0)]),
        "staging": DeskEmulator(sdkappid=STAGING, key=KEYS[STAGING], languages=[("en", 1), ("zh", 0)]),
    }
    for emulator in started.values():
        emulator.start()
    yield started
    for emulator in started.values():
        emulator.stop()


def _environment(emulators: dict[str, DeskEmulator], slack: FakeSlack, state_file: Path, **extra: str) -> Any:
    env = {"DESK_APPS": "prod,staging", "DESK_ADMINS": ADMIN, "DESK_STATE_FILE": str(state_file), **extra}
    for name, emulator in emulators.items():
        env |= {
            f"DESK_{name.upper()}_SDKAPPID": str(emulator.sdkappid),
            f"DESK_{name.upper()}_SECRET_KEY": KEYS[emulator.sdkappid],
            f"DESK_{name.upper()}_API_URL": emulator.base_url,
        }
    return load_settings({**env, **slack_env(slack)}, dotenv_path=None)


@pytest.fixture
def bots(emulators: dict[str, DeskEmulator], tmp_path: Path, redis_url: str) -> Iterator[dict[str, BotUnderTest]]:
    """Two bots on the same Desk apps: "shortcut" (as deployed) and "bolt" (WEB_ACK_SHORTCUT=0). They
    share their cache through Redis, so both hold the same lists and reports, fetched at the same
    time (which the messages show)."""
    state_file = tmp_path / "desk-languages.toml"
    state_file.write_text(DECLARED)
    with FakeSlack(token=BOT_TOKEN) as slack:
        served = {
            "shortcut": BotUnderTest(_environment(emulators, slack, state_file, REDIS_URL=redis_url), slack,
                                     emulators["prod"]),
            "bolt": BotUnderTest(_environment(emulators, slack, state_file, REDIS_URL=redis_url,
                                              WEB_ACK_SHORTCUT="0"), slack, emulators["prod"]),
        }
        try:
            for bot in served.values():  # warm: every list and report these requests may be answered from
                for text in ("", "staging"):  # the list comes through the response_url
                    bot.reply(bot.command(text).name, timeout=10)
                for text in ("status", "staging status"):  # "checking…" in the ack, then the report
                    assert "readiness" in str(bot.reply(bot.command(text).name, timeout=10))
            _settled()
            yield served
        finally:
            for bot in served.values():
                bot.close()


def _counted() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every counter of the bot's, and every histogram's count (not sums or buckets: times; nor the
    process_* and python_* series of the client library, which move with the process's own work)."""
    samples = {}
    for family in REGISTRY.collect():
        for sample in family.samples:
            if sample.name.endswith(("_total", "_count")) and not sample.name.startswith(("process_", "python_")):
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _settled(timeout: float = 15.0) -> None:
    """Wait until no counter moves for half a second: the warm-up's readiness checks (retried
    after the emulator's rate limit) may go on after the report was posted."""
    deadline, last, since = time.monotonic() + timeout, _counted(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = _counted()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= 0.5:
            return
    raise AssertionError("the bots' counters kept moving")


def _moved(before: dict[Any, float], after: dict[Any, float]) -> dict[Any, float]:
    return {key: value - before.get(key, 0.0) for key, value in after.items() if value != before.get(key, 0.0)}


REQUESTS: dict[str, dict[str, Any]] = {
    "the list": {"text": ""},
    "the list of another app": {"text": "staging"},
    "share": {"text": "share"},
    "default": {"text": "staging default"},
    "help": {"text": "help"},
    "an unknown option": {"text": "lsit"},
    "hostile text": {"text": HOSTILE},
    "status, an admin (Fix buttons, drift line)": {"text": "status", "user_id": ADMIN},
    "status, not an admin": {"text": "status", "user_id": MEMBER},
    "status of an app without a declared state": {"text": "staging status"},
    "a word Bolt reads as a payload": {"text": "payload"},
    "a command Bolt answers later (refresh)": {"text": "refresh"},
    "another slash command": {"text": "", "command": "/other-command"},
}
ANSWERED_BY_THE_SHORTCUT = {
    "the list", "the list of another app", "share", "default", "help", "an unknown option", "hostile text",
    "status, an admin (Fix buttons, drift line)", "status, not an admin", "status of an app without a declared state",
}


@pytest.mark.parametrize("case", list(REQUESTS))
@pytest.mark.parametrize("retried", [False, True], ids=["first", "retried"])
def test_the_shortcut_answers_exactly_as_bolt_does(
    bots: dict[str, BotUnderTest], case: str, retried: bool, caplog: pytest.LogCaptureFixture
) -> None:
    fields = dict(REQUESTS[case])
    text = fields.pop("text")
    name = f"case{list(REQUESTS).index(case)}-{int(retried)}"  # a URL path segment
    body = slash_command_body(text, response_url=bots["bolt"].slack.response_url(name),
                              trigger_id="13345224609.738474920.8088930838d88f008e0", **fields)
    answers: dict[str, Any] = {}
    for path, bot in bots.items():  # the very same request to each
        headers = sign(SIGNING_SECRET, body)
        if retried:  # Slack's retry headers change nothing for a command, on either path
            headers |= {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
        shortcut = bot.built.ack_shortcut
        answered_before = shortcut.answered if shortcut is not None else 0
        posted_before = len(bot.slack.responses(name))
        before = _counted()
        caplog.clear()
        with caplog.at_level(logging.INFO):
            response = bot.post(body, headers)
            if response.status_code == 200 and not response.content:  # answered later: wait for it
                bot.replies(name, posted_before + 1, timeout=10)
        answers[path] = {
            "status": response.status_code,
            "content-type": response.headers.get("Content-Type"),
            "content-length": response.headers.get("Content-Length"),
            "body": response.content,
            "metrics": _moved(before, _counted()),
            "logs": [(r.name, r.levelname, r.getMessage()) for r in caplog.records],
        }
        if shortcut is not None:
            answers[path]["by the shortcut"] = shortcut.answered - answered_before
    assert bots["bolt"].built.ack_shortcut is None
    assert answers["shortcut"].pop("by the shortcut") == (1 if case in ANSWERED_BY_THE_SHORTCUT else 0)
    assert answers["shortcut"] == answers["bolt"]
    if case in ANSWERED_BY_THE_SHORTCUT:  # an answer in the ack, counted once, with no log line
        assert answers["bolt"]["status"] == 200
        assert answers["bolt"]["body"].startswith(b"{")
        requests = {labels: n for (metric, labels), n in answers["bolt"]["metrics"].items()
                    if metric == "slack_requests_total"}
        assert list(requests.values()) == [1.0]
        assert {"kind": "command", "outcome": "ok"}.items() <= dict(next(iter(requests))).items()
        assert answers["bolt"]["logs"] == []
    if case == "another slash command":
        assert answers["bolt"]["status"] == 404


def test_a_new_list_is_answered_anew(bots: dict[str, BotUnderTest], emulators: dict[str, DeskEmulator]) -> None:
    """The kept answer follows the list the client holds: after a refresh that finds a new list,
    the next ack (on the shortcut) carries the new list, as Bolt's does."""
    emulators["staging"].set_languages([("en", 1), ("zh", 0), ("id", 0)])
    time.sleep(REFRESH_COALESCE + 0.1)  # a refresh sooner than this after the warm-up takes its list
    for bot in bots.values():  # the first fetches the new list; the second takes it from Redis
        reply = bot.command("staging refresh")
        assert "Indonesian" in str(bot.reply(reply.name, timeout=10))
    acks = {path: bot.command("staging").response.content for path, bot in bots.items()}
    assert b"Indonesian" in acks["shortcut"]
    assert acks["shortcut"] == acks["bolt"]


def test_a_command_not_signed_for_this_bot_never_reaches_the_shortcut(bots: dict[str, BotUnderTest]) -> None:
    bot = bots["shortcut"]
    shortcut = bot.built.ack_shortcut
    assert shortcut is not None
    before = shortcut.answered
    body = slash_command_body("", response_url=bot.slack.response_url("forged"))
    response = bot.post(body, sign("not-the-signing-secret", body))
    assert response.status_code == 401
    assert COMMAND_FIELD in body  # a body the shortcut would answer, were it signed for this bot
    assert shortcut.answered == before
