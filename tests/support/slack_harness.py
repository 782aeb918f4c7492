"""The Slack app under test, served for real: the harness of the `test_slack_*` end-to-end suites.

`BotUnderTest` is the production wiring (the composition root's `build_bot`) served over
HTTP on loopback by `LoopbackServer`, with `FakeSlack` as the Slack Web API and
`response_url` catcher and the Desk emulator behind it. Requests are signed
exactly as Slack signs them; nothing of ours is mocked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import count
from typing import Any
from urllib.parse import parse_qs, urlencode

import requests
from slack_bolt import App

from bot.boot import build_bot
from bot.config import Settings
from bot.deps import BotDeps
from bot.sandbox.desk_emulator import DeskEmulator
from bot.sandbox.slack_emulator import (
    SANDBOX_USER_ID,
    FakeSlack,
    block_action_body,
    sign,
    slash_command_body,
    view_submission_body,
)
from bot.slack.loopback import LoopbackServer
from tests.support.environment import make_settings

BOT_TOKEN = "xoxb-e2e-bot-token-not-real"  # made up; FakeSlack accepts it
SIGNING_SECRET = "e2e0signing0secret0not0real0c0ffee"
APP_TOKEN = "xapp-e2e-app-token-not-real"
ACK_LIMIT = 3.0  # Slack's deadline for the HTTP 200 of a command or a click


def slack_env(slack: FakeSlack, **extra: Any) -> dict[str, str]:
    """The Slack half of the environment, pointing at `slack`; digests kept in memory and idle."""
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "DATABASE_URL": "sqlite://",
        "DIGEST_TICKER": "0",
    }
    env.update({key: str(value) for key, value in extra.items()})
    return env


@dataclass
class Reply:
    """One request's HTTP answer (the ack) and the response_url name its follow-ups go to."""

    response: requests.Response
    name: str
    elapsed: float  # seconds until the ack arrived

    @property
    def status(self) -> int:
        return self.response.status_code

    @property
    def ack(self) -> dict[str, Any] | None:
        """The message carried by the ack itself, or None for an empty (silent) ack."""
        return self.response.json() if self.response.content else None

    @property
    def answer(self) -> dict[str, Any]:
        """The message carried by the ack, which must not be empty."""
        ack = self.ack
        assert ack is not None, "expected the answer inside the ack"
        return ack


class BotUnderTest:
    """The production WSGI app on a loopback port, with its Slack and Desk stand-ins."""

    def __init__(self, settings: Settings, slack: FakeSlack, desk: DeskEmulator) -> None:
        self.settings = settings
        self.slack = slack
        self.desk = desk
        self._names = count()
        self._stack = ExitStack()
        built = build_bot(settings)
        self.built = built  # the composition root's Bot: its edge, shortcut and jobs
        self.deps: BotDeps = built.deps
        self.app: App = built.slack
        self.server = self._stack.enter_context(LoopbackServer(built.wsgi))
        self.url = self.server.url
        self.http = self._stack.enter_context(requests.Session())

    def close(self) -> None:
        self._stack.close()

    def post(self, body: str, headers: dict[str, str], path: str = "/slack/events") -> requests.Response:
        return self.http.post(f"{self.url}{path}", data=body.encode(), headers=headers, timeout=10)

    def send(self, body: str, name: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> Reply:
        headers = sign(secret, body, timestamp)
        started = time.monotonic()
        response = self.post(body, headers)
        return Reply(response, name, time.monotonic() - started)

    def new_name(self, prefix: str) -> str:
        return f"{prefix}-{next(self._names)}"

    def command(self, text: str, *, name: str | None = None, **signing: Any) -> Reply:
        """`/desk-languages <text>`, signed; its follow-ups arrive at `response_url(name)`."""
        name = name or self.new_name("cmd")
        body = slash_command_body(text, response_url=self.slack.response_url(name), trigger_id=self.slack.trigger_id())
        return self.send(body, name, **signing)

    def click(self, action_id: str, *, message: dict[str, Any] | None = None) -> Reply:
        """A button click (block_actions) on `message`, or on an ephemeral reply when None."""
        name = self.new_name("click")
        body = block_action_body(
            action_id, response_url=self.slack.response_url(name), message=message, trigger_id=self.slack.trigger_id()
        )
        return self.send(body, name)

    def click_in_view(
        self,
        view: dict[str, Any],
        action_id: str,
        *,
        user: str = SANDBOX_USER_ID,
        value: str = "",
        entered: dict[str, Any] | None = None,
    ) -> Reply:
        """A click by `user` on the button `action_id` inside the modal `view` (as FakeSlack holds it)."""
        body = block_action_body(
            action_id, view=view, value=value, entered=entered, user_id=user, trigger_id=self.slack.trigger_id(user)
        )
        return self.send(body, self.new_name("view-click"))

    def submit(
        self, view: dict[str, Any], entered: dict[str, Any] | None = None, *, user: str = SANDBOX_USER_ID
    ) -> Reply:
        """`user` submits the modal `view` with `entered` in its inputs (by block_id), signed."""
        body = view_submission_body(view, entered, user_id=user, trigger_id=self.slack.trigger_id(user))
        return self.send(body, self.new_name("submit"))

    def replies(self, name: str, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """What reached `response_url(name)`, once at least `count` posts arrived (else fail)."""
        arrived = self.slack.wait_for(lambda fake: len(fake.responses(name)) >= count, timeout=timeout)
        posts = [call.body for call in self.slack.responses(name)]
        assert arrived, f"{count} post(s) expected at response_url {name!r}, got {len(posts)}"
        return posts

    def reply(self, name: str, timeout: float = 5.0) -> dict[str, Any]:
        """The one post to `response_url(name)`."""
        return self.replies(name, 1, timeout)[0]

    def warm(self) -> dict[str, Any]:
        """Fill the bot's cache with one cold `/desk-languages`; returns its reply."""
        reply = self.command("")
        assert reply.status == 200 and reply.ack is None
        return self.reply(reply.name)


def start_bot(slack: FakeSlack, desk: DeskEmulator, **env: Any) -> BotUnderTest:
    settings = make_settings(desk, **slack_env(slack, **env))
    return BotUnderTest(settings, slack, desk)


def running_bot(desk: DeskEmulator, **env: Any) -> Iterator[BotUnderTest]:
    """A fixture body: the bot with a fresh FakeSlack, stopped afterwards."""
    with FakeSlack(token=BOT_TOKEN) as slack:
        bot = start_bot(slack, desk, **env)
        try:
            yield bot
        finally:
            bot.close()


def command_as(bot: BotUnderTest, user: str, text: str, prefix: str = "cmd") -> dict[str, Any]:
    """`/desk-languages <text>` from `user`, acked empty; the one reply to its response_url."""
    name = bot.new_name(prefix)
    body = slash_command_body(
        text, response_url=bot.slack.response_url(name), user_id=user, trigger_id=bot.slack.trigger_id(user)
    )
    reply = bot.send(body, name)
    assert reply.status == 200 and reply.ack is None  # acked at once, answered later
    return bot.reply(name)


def button(message: dict[str, Any], action_id: str) -> dict[str, Any]:
    """The button `action_id` of `message` (else fail)."""
    for block in message.get("blocks") or []:
        for element in block.get("elements") or []:
            if element.get("action_id") == action_id:
                return dict(element)
    raise AssertionError(f"no {action_id} button in {json.dumps(message)[:300]}")


def click(
    bot: BotUnderTest, message: dict[str, Any], action_id: str, user: str = SANDBOX_USER_ID, prefix: str = "click"
) -> Reply:
    """A click by `user` on the button `action_id` of `message`, carrying its value, signed."""
    name = bot.new_name(prefix)
    value = button(message, action_id)["value"]
    body = block_action_body(
        action_id,
        response_url=bot.slack.response_url(name),
        value=value,
        user_id=user,
        trigger_id=bot.slack.trigger_id(user),
    )
    return bot.send(body, name)


def event_body(event: dict[str, Any]) -> str:
    """An Events API callback carrying `event`, as Slack POSTs it."""
    return json.dumps(
        {
            "token": "SandboxVerificationToken",
            "team_id": "T0SANDBOX",
            "api_app_id": "A0SANDBOX",
            "event": event,
            "type": "event_callback",
            "event_id": "Ev0SANDBOX",
            "event_time": int(time.time()),
        }
    )


def texts(message: dict[str, Any] | None) -> str:
    """Every string in a message (fallback text, block texts, button labels), one per line."""
    return "\n".join(strings(message))


def strings(message: dict[str, Any] | None) -> list[str]:
    """Every string in a message's fallback text and blocks."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, str):
            found.append(node)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk({"text": (message or {}).get("text"), "blocks": (message or {}).get("blocks")})
    return found


def action_ids(message: dict[str, Any]) -> list[str]:
    return [
        element.get("action_id")
        for block in message.get("blocks") or []
        if block.get("type") == "actions"
        for element in block.get("elements") or []
    ]


def as_json(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False)


def home_tab_click(action_id: str, view: dict[str, Any]) -> str:
    """A click on the home tab: its container is the view, and Slack sends no response_url."""
    payload = json.loads(parse_qs(block_action_body(action_id, response_url=""))["payload"][0])
    payload["container"] = {"type": "view", "view_id": "V0SANDBOX"}
    payload["view"] = {"id": "V0SANDBOX", "type": "home", "blocks": view.get("blocks", [])}
    del payload["response_url"]
    return urlencode({"payload": json.dumps(payload)})
