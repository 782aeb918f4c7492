"""The Slack app's edges, over real HTTP where Slack reaches it: request signatures (401),
`/healthz`, replies Slack refuses or rate-limits, boot-time failures, Socket Mode wiring,
and no Slack secret in any log line even at DEBUG.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, parse_qsl

import pytest
from slack_bolt.request import BoltRequest

from bot import __version__
from bot.boot import build_bot
from bot.config import ConfigError
from bot.logs import configure_logging
from bot.sandbox.desk_emulator import SANDBOX_KEY, DeskEmulator, Fault
from bot.sandbox.slack_emulator import FakeSlack, block_action_body, sign, slash_command_body
from bot.slack.blocks import SHARE_ACTION
from tests.support.environment import make_settings
from tests.support.slack_harness import (
    APP_TOKEN,
    BOT_TOKEN,
    SIGNING_SECRET,
    BotUnderTest,
    running_bot,
    slack_env,
    start_bot,
    texts,
)
from tests.support.tiers import e2e_fixture


@pytest.fixture
def bot(emulator: DeskEmulator) -> Iterator[BotUnderTest]:
    yield from running_bot(emulator)


def assert_rejected(bot: BotUnderTest, response_status: int, response_body: str, name: str) -> None:
    assert response_status == 401
    assert json.loads(response_body) == {"error": "invalid request"}
    time.sleep(0.2)
    assert bot.slack.responses(name) == []
    assert bot.desk.calls == []


# --- request signatures --------------------------------------------------------------------------


def test_a_request_signed_with_another_secret_is_401(bot: BotUnderTest) -> None:
    reply = bot.command("", secret="not-the-signing-secret")
    assert_rejected(bot, reply.status, reply.response.text, reply.name)


@pytest.mark.parametrize("age", [301, 3600, -301], ids=["just-over-5-min", "an-hour", "from-the-future"])
def test_a_timestamp_more_than_five_minutes_off_is_401(bot: BotUnderTest, age: int) -> None:
    reply = bot.command("", timestamp=int(time.time()) - age)  # correctly signed, replayed late
    assert_rejected(bot, reply.status, reply.response.text, reply.name)


def test_a_timestamp_within_five_minutes_is_accepted(bot: BotUnderTest) -> None:
    reply = bot.command("help", timestamp=int(time.time()) - 280)
    assert reply.status == 200
    assert "Usage" in texts(reply.answer)


def test_a_body_changed_after_signing_is_401(bot: BotUnderTest) -> None:
    name = "tampered"
    signed = slash_command_body("", response_url=bot.slack.response_url(name))
    headers = sign(SIGNING_SECRET, signed)
    forged = signed.replace("text=&", "text=share&")
    assert forged != signed
    response = bot.post(forged, headers)
    assert_rejected(bot, response.status_code, response.text, name)


def test_unsigned_commands_and_stale_clicks_are_401(bot: BotUnderTest) -> None:
    name = "unsigned"
    body = slash_command_body("", response_url=bot.slack.response_url(name))
    response = bot.post(body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert_rejected(bot, response.status_code, response.text, name)
    click = block_action_body(SHARE_ACTION, response_url=bot.slack.response_url(name))
    headers = sign(SIGNING_SECRET, click, int(time.time()) - 600)
    response = bot.post(click, headers)
    assert_rejected(bot, response.status_code, response.text, name)


def test_the_events_url_verification_challenge_is_answered(bot: BotUnderTest) -> None:
    """Slack sends it, signed, when the Event Subscriptions URL of the manifest is saved."""
    body = json.dumps({"token": "SandboxVerificationToken", "challenge": "c-3eZbrw1aBm2r", "type": "url_verification"})
    response = bot.post(body, {**sign(SIGNING_SECRET, body), "Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.json() == {"challenge": "c-3eZbrw1aBm2r"}
    forged = bot.post(body, {**sign("wrong", body), "Content-Type": "application/json"})
    assert forged.status_code == 401


# --- /healthz ------------------------------------------------------------------------------------


def test_healthz_answers_from_memory(bot: BotUnderTest) -> None:
    bot.warm()
    slack_calls, desk_calls = len(bot.slack.calls()), len(bot.desk.calls)
    for _ in range(3):
        response = bot.http.get(f"{bot.url}/healthz", timeout=5)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/json"
        assert response.json() == {"status": "ok", "version": __version__, "digests": "ok"}
    assert bot.http.head(f"{bot.url}/healthz", timeout=5).status_code == 200
    assert (len(bot.slack.calls()), len(bot.desk.calls)) == (slack_calls, desk_calls)


def test_other_paths_are_404(bot: BotUnderTest) -> None:
    assert bot.http.get(f"{bot.url}/", timeout=5).status_code == 404
    assert bot.http.get(f"{bot.url}/healthz/x", timeout=5).status_code == 404
    assert bot.http.post(f"{bot.url}/healthz", data=b"", timeout=5).status_code == 404


# --- replies Slack does not take at once ------------------------------------------------------------


def test_a_rate_limited_reply_is_retried_after_retry_after(bot: BotUnderTest) -> None:
    bot.slack.script("response_url", status=429, headers={"Retry-After": "0"})
    reply = bot.command("")
    posts = bot.replies(reply.name, 2, timeout=5)
    assert [call.status for call in bot.slack.responses(reply.name)] == [429, 200]
    assert posts[0] == posts[1]


def test_a_refused_reply_is_logged_without_the_response_url(
    bot: BotUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.slack.response_url")
    bot.slack.script("response_url", status=404, body={"ok": False, "error": "expired_url"})
    reply = bot.command("")
    bot.replies(reply.name)
    assert bot.slack.wait_for(lambda _: "Reply to Slack refused" in caplog.text, timeout=3)
    assert "HTTP 404" in caplog.text
    assert "/response/" not in caplog.text  # a response_url is a credential for 30 minutes


# --- boot ---------------------------------------------------------------------------------------


@e2e_fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=BOT_TOKEN, app_token=APP_TOKEN) as fake:
        yield fake


def boot_error(
    emulator: DeskEmulator, slack: FakeSlack, env: dict[str, str] | None = None, *, socket_mode: bool = False
) -> ConfigError:
    settings = make_settings(emulator, **{**slack_env(slack), **(env or {})})
    with pytest.raises(ConfigError) as raised:
        build_bot(settings, socket_mode=socket_mode)
    message = str(raised.value)
    assert "\n" not in message
    for secret in (BOT_TOKEN, SIGNING_SECRET, APP_TOKEN):
        assert secret not in message
    return raised.value


def test_a_token_refused_by_auth_test_fails_the_boot(emulator: DeskEmulator, slack: FakeSlack) -> None:
    slack.script("auth.test", body={"ok": False, "error": "invalid_auth"})
    error = boot_error(emulator, slack)
    assert error.variable == "SLACK_BOT_TOKEN"
    assert "invalid_auth" in str(error)
    assert len(slack.calls("auth.test")) == 1


def test_an_unreachable_slack_fails_the_boot(emulator: DeskEmulator, slack: FakeSlack) -> None:
    closed = FakeSlack().start()
    url = closed.api_url
    closed.stop()
    error = boot_error(emulator, slack, {"SLACK_API_URL": url})
    assert error.variable == "SLACK_API_URL"


@pytest.mark.parametrize("variable", ["SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN"])
def test_a_missing_http_secret_fails_the_boot_before_any_call(
    emulator: DeskEmulator, slack: FakeSlack, variable: str
) -> None:
    error = boot_error(emulator, slack, {variable: ""})
    assert error.variable == variable
    assert str(error).startswith(f"{variable}: is not set.")
    assert slack.calls() == []


def test_socket_mode_needs_the_app_token(emulator: DeskEmulator, slack: FakeSlack) -> None:
    error = boot_error(emulator, slack, {"SLACK_SIGNING_SECRET": ""}, socket_mode=True)
    assert error.variable == "SLACK_APP_TOKEN"


# --- Socket Mode --------------------------------------------------------------------------------


def test_socket_mode_runs_the_same_listeners_without_signatures(emulator: DeskEmulator, slack: FakeSlack) -> None:
    """Socket Mode hands Bolt the payload as a dict and checks no signature (there is none)."""
    settings = make_settings(emulator, **slack_env(slack, SLACK_SIGNING_SECRET="", SLACK_APP_TOKEN=APP_TOKEN))
    app = build_bot(settings, socket_mode=True).slack

    def dispatch(payload: dict[str, Any]) -> tuple[int, str]:
        response = app.dispatch(BoltRequest(body=payload, mode="socket_mode"))
        return response.status, response.body

    help_status, help_body = dispatch(dict(parse_qsl(slash_command_body("help", response_url=slack.response_url("h")))))
    assert help_status == 200
    assert "`/desk-languages share`" in texts(json.loads(help_body))

    listed = dict(parse_qsl(slash_command_body("", response_url=slack.response_url("socket-list"))))
    assert dispatch(listed) == (200, "")
    assert slack.wait_for(lambda fake: bool(fake.responses("socket-list")))
    assert "English (`en`)" in texts(slack.responses("socket-list")[0].body)

    click = block_action_body(SHARE_ACTION, response_url=slack.response_url("socket-share"))
    assert dispatch(json.loads(parse_qs(click)["payload"][0])) == (200, "")
    assert slack.wait_for(lambda fake: bool(fake.responses("socket-share")))
    assert slack.responses("socket-share")[0].body["response_type"] == "in_channel"
    assert slack.responses("h") == []  # help was answered in the ack only, here too


# --- secrets ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("debug_logging")
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_slack_secret_reaches_the_logs_at_debug(
    emulator: DeskEmulator,
    slack: FakeSlack,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    log_format: str,
) -> None:
    bot = start_bot(slack, emulator, LOG_LEVEL="DEBUG", LOG_FORMAT=log_format)
    try:
        configure_logging(bot.settings.log_level, bot.settings.secrets(), bot.settings.log_format)
        caplog.set_level(logging.DEBUG)
        # An error path: Desk refuses, and Slack then refuses the reply.
        emulator.inject(Fault(code=-50040))
        slack.script("response_url", status=404, body={"ok": False, "error": "expired_url"})
        failed = bot.command("")
        bot.replies(failed.name)
        # A good command (refresh: past the negative cache), a click, and a bad signature.
        bot.reply(bot.command("refresh").name)
        bot.reply(bot.click(SHARE_ACTION).name)
        assert bot.command("", secret="wrong-secret").status == 401
        assert bot.slack.wait_for(lambda _: "Reply to Slack refused" in caplog.text, timeout=3)
    finally:
        bot.close()

    err = capsys.readouterr().err
    logged = caplog.text + "\n".join(record.exc_text or "" for record in caplog.records) + err
    if log_format == "json":  # the bot's own handler wrote one JSON object a line
        lines = [json.loads(line) for line in err.splitlines() if line.strip()]
        assert any(line.get("slack_request_id") for line in lines)
        assert any(line["message"].startswith("Desk call failed") for line in lines)
    assert any(r.levelno == logging.DEBUG and r.name.startswith("slack_bolt") for r in caplog.records)
    assert "Desk call failed" in logged
    for secret in (BOT_TOKEN, SIGNING_SECRET, SANDBOX_KEY):
        assert secret not in logged
    assert "usersig=" not in logged.replace("usersig=<redacted>", "")


def test_socket_mode_watchdog_returns_only_after_a_long_outage() -> None:
    """A silent stall after reconnects (bolt-python#1529) must end the process, a blip must not."""
    from bot.serve import watch_connection

    now = [0.0]
    states = iter([True, False, True, False, False, False, False])
    checks: list[float] = []

    def sleep(seconds: float) -> None:
        now[0] += seconds
        checks.append(now[0])

    watch_connection(lambda: next(states), interval=10, grace=25, clock=lambda: now[0], sleep=sleep)
    # down at 20 s, back at 30 s (blip forgotten), down again from 40 s: returns at 70 s (> 25 s down)
    assert checks[-1] == 70
