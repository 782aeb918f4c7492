"""Socket Mode end to end: the real `python -m bot socket` process, slack_sdk's own client inside
it, over a real loopback websocket to the fake Slack's Socket Mode server (tests/support/socket_mode_server.py).

Commands and clicks travel as envelopes, answers come back in the client's acks or through
`response_url`; the server drops the connection, asks the client to reconnect, re-sends what was
not acked, and finally refuses reconnects so the watchdog must end the process.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.sandbox.desk_emulator import SANDBOX_KEY
from bot.slack.blocks import SHARE_ACTION
from tests.support.served import assert_one_line_config_error, clean_env, run_bot
from tests.support.slack_harness import APP_TOKEN, BOT_TOKEN, slack_env, texts
from tests.support.socket_bot import SocketBot, start_socket_bot
from tests.support.socket_mode_server import SocketModeFakeSlack
from tests.support.tiers import e2e_fixture

RECONNECT_TIMEOUT = 15.0  # generous: the machine is shared


@e2e_fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SocketBot]:
    """One Socket Mode process for the module (booting one costs seconds on a busy machine)."""
    with SocketModeFakeSlack(token=BOT_TOKEN, app_token=APP_TOKEN) as slack:
        bot = start_socket_bot(slack, tmp_path_factory.mktemp("socket"))
        try:
            yield bot
        finally:
            bot.stop()


def reconnected(bot: SocketBot, before: int) -> None:
    assert bot.slack.socket.wait_connections(before + 1, timeout=RECONNECT_TIMEOUT), bot.stderr()


# --- answers ----------------------------------------------------------------------------------


@pytest.mark.e2e
def test_a_cold_command_is_answered_through_response_url_then_a_warm_one_in_the_ack(running: SocketBot) -> None:
    socket = running.slack.socket
    cold = running.command("", "cold")
    ack = socket.wait_ack(cold)
    assert ack.payload is None  # acked at once, empty: the list is not known yet
    (answer,) = running.posts("cold")
    assert "English (`en`)" in texts(answer)

    warm = running.command("", "warm")
    payload = socket.wait_ack(warm).payload
    assert payload is not None and "English (`en`)" in texts(payload)  # the answer rode in the ack
    time.sleep(0.3)
    assert running.slack.responses("warm") == []
    assert len(socket.acks(cold)) == len(socket.acks(warm)) == 1


def test_help_is_answered_in_the_ack(running: SocketBot) -> None:
    payload = running.slack.socket.wait_ack(running.command("help", "help")).payload
    assert payload is not None and "`/desk-languages share`" in texts(payload)


def test_a_button_click_is_answered(running: SocketBot) -> None:
    clicked = running.slack.socket_click(SHARE_ACTION, response_url=running.slack.response_url("share"))
    assert running.slack.socket.wait_ack(clicked).payload is None
    (shared,) = running.posts("share")
    assert shared["response_type"] == "in_channel"
    assert "English (`en`)" in texts(shared)


# --- connections that end -------------------------------------------------------------------


@pytest.mark.e2e
def test_after_a_dropped_connection_nothing_is_lost_or_answered_twice(running: SocketBot) -> None:
    socket = running.slack.socket
    before = socket.connections
    assert socket.drop() == 1
    waiting = running.command("", "while-down")  # sent before the client is back: kept for it
    reconnected(running, before)
    after = running.command("help", "after-drop")
    assert socket.wait_ack(after, timeout=5).connection == before + 1
    assert socket.wait_ack(waiting, timeout=5).payload is not None
    time.sleep(0.5)
    assert len(socket.acks(waiting)) == len(socket.acks(after)) == 1
    assert socket.pending() == []


@pytest.mark.e2e
def test_a_command_in_flight_at_the_drop_is_answered_once(running: SocketBot) -> None:
    """The bot did the work and acked, but the connection died before Slack read the ack: the
    envelope comes again on the next connection, and is acked again without running again."""
    socket = running.slack.socket
    before = socket.connections
    # `refresh` is answered by a lazy listener: running it twice would post twice.
    in_flight = running.command("refresh", "in-flight", lose_ack=True)
    reconnected(running, before)
    ack = socket.wait_ack(in_flight, timeout=10)
    assert ack.connection == before + 1 and ack.payload is None
    (answer,) = running.posts("in-flight")
    assert "English (`en`)" in texts(answer)
    time.sleep(1.0)  # a second run would have posted by now
    assert len(running.slack.responses("in-flight")) == 1
    assert len(socket.acks(in_flight)) == 1
    assert "delivered again (retry 1); acked with its first answer" in running.stderr()


@pytest.mark.parametrize("reason", ["refresh_requested", "warning"])
def test_a_disconnect_message_makes_the_client_reconnect(running: SocketBot, reason: str) -> None:
    socket = running.slack.socket
    before = socket.connections
    socket.disconnect(reason)
    reconnected(running, before)
    assert socket.wait(lambda server: server.open_connections == 1, timeout=5)  # the old one is closed
    after = running.command("help", f"after-{reason}")
    assert socket.wait_ack(after).connection == before + 1


# --- the watchdog -----------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize("how", ["handshake-refused", "connections-open-fails"])
def test_a_connection_that_stays_down_ends_the_process_with_exit_1(tmp_path: Path, how: str) -> None:
    with SocketModeFakeSlack(token=BOT_TOKEN, app_token=APP_TOKEN) as slack:
        bot = start_socket_bot(slack, tmp_path, SOCKET_STALL_CHECK="0.2", SOCKET_STALL_GRACE="1.5")
        try:
            if how == "handshake-refused":
                slack.socket.refuse()
            else:
                slack.script("apps.connections.open", body={"ok": False, "error": "internal_error"}, times=-1)
            slack.socket.drop()
            code = bot.process.wait(timeout=30)
        finally:
            bot.stop()
        if how == "handshake-refused":
            assert slack.socket.refused >= 1  # the client tried, and could not get back
        else:
            assert len(slack.calls("apps.connections.open")) >= 2  # the boot's check, then the retries
    stderr = bot.stderr()
    assert code == 1, stderr
    ending = [line for line in stderr.splitlines() if "exiting so it is restarted" in line]
    assert ending == ["error: Socket Mode connection down for over 1.5 s; exiting so it is restarted"], stderr
    assert "Traceback" not in stderr
    for secret in (BOT_TOKEN, APP_TOKEN, SANDBOX_KEY):
        assert secret not in stderr


@pytest.mark.e2e
def test_a_bad_stall_grace_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with SocketModeFakeSlack(token=BOT_TOKEN, app_token=APP_TOKEN) as slack:
        env = clean_env(DESK_SANDBOX="1", SOCKET_STALL_GRACE="2 minutes", **slack_env(slack, SLACK_APP_TOKEN=APP_TOKEN))
        assert_one_line_config_error(run_bot("socket", cwd=tmp_path, env=env), "SOCKET_STALL_GRACE")
        assert slack.socket.connections == 0
