"""The bot that runs Workflow Builder steps, over either transport, for tests that run one scenario
over HTTP and over Socket Mode (tests/test_workflow_steps.py).

Over HTTP it is `BotUnderTest` (the production app in this process, the event POSTed signed); over
Socket Mode it is `python -m bot socket` (tests/support/socket_bot.py), the event and the clicks
sent as envelopes by the fake's Socket Mode server. Both talk to the test's Desk emulator and a
`SocketModeFakeSlack`, keep their requests in a SQLite file the test can read, and are driven
through the same calls: `deliver`, `decide` and `command`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count
from pathlib import Path
from typing import Any, Protocol

from bot.sandbox.desk_emulator import DeskEmulator
from bot.sandbox.slack_emulator import StepExecution
from tests.support.environment import make_settings
from tests.support.slack_harness import (
    APP_TOKEN,
    BOT_TOKEN,
    BotUnderTest,
    button,
    click,
    slack_env,
    texts,
)
from tests.support.socket_bot import SocketBot, start_socket_bot
from tests.support.socket_mode_server import SocketModeFakeSlack

TRANSPORTS = ("http", "socket")
ENDS_WITHIN = 10.0  # seconds for a step to end once it can


class StepBot(Protocol):
    slack: SocketModeFakeSlack
    database: Path

    def deliver(self, callback_id: str, inputs: dict[str, Any]) -> str:
        """Start an execution of the step and deliver its event, acked; the execution's id."""

    def decide(self, request: dict[str, Any], action_id: str, user: str) -> str:
        """`user` clicks `action_id` on the posted `request`; the texts of the answer they see."""

    def command(self, text: str) -> dict[str, Any]:
        """`/desk-languages <text>`'s answer posted to its response_url (after an empty ack, or
        a progress note in it, as a cold list or `status` is answered)."""


class _HttpStepBot:
    def __init__(self, bot: BotUnderTest, database: Path) -> None:
        self.bot, self.slack, self.database = bot, bot.slack, database

    def deliver(self, callback_id: str, inputs: dict[str, Any]) -> str:
        execution_id, payload = self.slack.function_executed_event(callback_id, inputs)
        reply = self.bot.send(json.dumps(payload), self.bot.new_name("step"))
        assert reply.status == 200 and reply.elapsed < 3.0
        return execution_id

    def decide(self, request: dict[str, Any], action_id: str, user: str) -> str:
        return texts(self.bot.reply(click(self.bot, request, action_id, user=user).name, timeout=ENDS_WITHIN))

    def command(self, text: str) -> dict[str, Any]:
        reply = self.bot.command(text)
        assert reply.status == 200
        return self.bot.reply(reply.name, timeout=ENDS_WITHIN)


class _SocketStepBot:
    def __init__(self, bot: SocketBot, database: Path) -> None:
        self.bot, self.slack, self.database = bot, bot.slack, database
        self._names = count()

    def deliver(self, callback_id: str, inputs: dict[str, Any]) -> str:
        execution_id, payload = self.slack.function_executed_event(callback_id, inputs)
        envelope = self.slack.socket_event(payload)
        assert self.slack.socket.wait_ack(envelope, timeout=ENDS_WITHIN).envelope_id == envelope
        return execution_id

    def decide(self, request: dict[str, Any], action_id: str, user: str) -> str:
        name = f"socket-click-{next(self._names)}"
        clicked = self.slack.socket_click(action_id, response_url=self.slack.response_url(name),
                                          value=button(request, action_id)["value"], user_id=user)
        self.slack.socket.wait_ack(clicked, timeout=ENDS_WITHIN)
        return texts(self.bot.posts(name, timeout=ENDS_WITHIN)[0])

    def command(self, text: str) -> dict[str, Any]:
        name = f"socket-command-{next(self._names)}"
        self.slack.socket.wait_ack(self.bot.command(text, name), timeout=ENDS_WITHIN)
        return self.bot.posts(name, timeout=ENDS_WITHIN)[0]


@contextmanager
def step_bot(transport: str, desk: DeskEmulator, folder: Path, functions: dict[str, Any],
             **env: str) -> Iterator[StepBot]:
    """The bot over `transport` ("http" or "socket"), its FakeSlack checking completions against
    `functions` (the generated manifest's), with `env` on top of the usual environment."""
    database = folder / f"{transport}-steps.db"
    with SocketModeFakeSlack(token=BOT_TOKEN, app_token=APP_TOKEN) as slack:
        slack.functions = functions
        environment = {"DATABASE_URL": f"sqlite:///{database}", **env}
        if transport == "http":
            served = BotUnderTest(make_settings(desk, **slack_env(slack, **environment)), slack, desk)
            try:
                yield _HttpStepBot(served, database)
            finally:
                served.close()
        else:
            process = start_socket_bot(slack, folder, desk=desk, **environment)
            try:
                yield _SocketStepBot(process, database)
            finally:
                process.stop()


def ended(slack: SocketModeFakeSlack, execution_id: str) -> StepExecution:
    """The execution once it has ended (else fail)."""
    assert slack.wait_for(lambda fake: (fake.execution(execution_id) or StepExecution("", "")).state != "running",
                          timeout=ENDS_WITHIN), f"the step {execution_id} did not end"
    found = slack.execution(execution_id)
    assert found is not None
    return found
