"""`python -m bot socket` as a subprocess against a SocketModeFakeSlack, for the Socket Mode tests."""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.sandbox.desk_emulator import DeskEmulator
from tests.support.environment import desk_env
from tests.support.served import BOOT_TIMEOUT, clean_env
from tests.support.slack_harness import APP_TOKEN, slack_env
from tests.support.socket_mode_server import SocketModeFakeSlack

PING_INTERVAL = 0.5  # the SDK notices a dead connection after about five failed pings


@dataclass
class SocketBot:
    """`python -m bot socket` against a SocketModeFakeSlack; stderr goes to a file."""

    process: subprocess.Popen[str]
    slack: SocketModeFakeSlack
    log: Path

    def stderr(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def command(self, text: str, name: str, *, lose_ack: bool = False) -> str:
        return self.slack.socket_command(text, response_url=self.slack.response_url(name), lose_ack=lose_ack)

    def posts(self, name: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, object]]:
        arrived = self.slack.wait_for(lambda fake: len(fake.responses(name)) >= count, timeout=timeout)
        posts = [call.body for call in self.slack.responses(name)]
        assert arrived, f"{count} post(s) expected at response_url {name!r}, got {len(posts)}:\n{self.stderr()}"
        return posts


def start_socket_bot(
    slack: SocketModeFakeSlack, tmp_path: Path, *, desk: DeskEmulator | None = None, **env: str
) -> SocketBot:
    """The process, connected; Desk is its own embedded emulator, or `desk` (a test's, which the
    test can make fail). `env` adds to or overrides the environment (DATABASE_URL, for one)."""
    desk_settings = desk_env(desk) if desk is not None else {"DESK_SANDBOX": "1"}
    environment = clean_env(**{
        **desk_settings,
        **slack_env(slack, SLACK_SIGNING_SECRET="", SLACK_APP_TOKEN=APP_TOKEN),
        "SOCKET_PING_INTERVAL": str(PING_INTERVAL),
        **env,
    })
    log = tmp_path / "socket-bot.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "socket"], cwd=tmp_path, env=environment, stdout=sink, stderr=sink, text=True
        )
    bot = SocketBot(process, slack, log)
    if not slack.socket.wait_connections(1, timeout=BOOT_TIMEOUT):
        bot.stop()
        pytest.fail(f"python -m bot socket did not connect within {BOOT_TIMEOUT:.0f} s:\n{bot.stderr()}")
    return bot
