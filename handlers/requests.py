"""What a Slack request is, for metrics and log context, and how each one is observed.

`describe_request` is pure and cheap (it runs before every ack, no I/O). Only words the bot or
Slack defines come out: a slash command's sub-command from the grammar (never the text typed),
one of the bot's own button ids, an event type; anything else is "unknown". Channel and user ids
go to the log context only, never to a metric label.

`RequestObserver` is the one place a request is counted, timed and given its log context, for
Bolt's dispatch (bot/slack/bolt_app.py) and for the acks the edge answers itself
(bot/slack/ack_shortcut.py) alike, so both report the same series.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bot import metrics
from bot.logs import bind_request, new_request_id
from bot.management.messages import CANCEL_ACTION, CONFIRM_ACTION
from bot.metrics import label
from bot.slack import blocks
from bot.slack.grammar import ParsedCommand, parse_command

BUTTONS = (blocks.REFRESH_ACTION, blocks.SHARE_ACTION, CONFIRM_ACTION, CANCEL_ACTION)
EVENTS = ("app_home_opened", "app_mention", "app_uninstalled", "tokens_revoked", "message")
KINDS = (
    "view_submission", "view_closed", "shortcut", "message_action", "block_suggestion", "url_verification",
    "app_rate_limited", "interactive_message", "dialog_submission",
)


@dataclass(frozen=True)
class RequestInfo:
    kind: str  # command, block_actions, event, view_submission, url_verification, …
    action: str  # the sub-command, button id or event type; "none" when the kind has none
    app: str | None = None  # the Desk app named in a command
    channel: str | None = None
    user: str | None = None
    command: str | None = None  # the slash command's name (`/desk-languages`), not its text


def describe_request(body: dict[str, Any], app_names: tuple[str, ...], default_app: str) -> RequestInfo:
    """`app_names` as the grammar takes them (none for a one-app bot); `default_app` the first."""
    if "command" in body:  # a slash command's form body
        return describe_command(body, parse_command(_text(body.get("text")), app_names), default_app)
    kind = _text(body.get("type")) or "unknown"
    channel, user = _id(body.get("channel")), _id(body.get("user"))
    if kind == "block_actions":
        actions = body.get("actions") or [{}]
        first = actions[0] if isinstance(actions, list) and isinstance(actions[0], dict) else {}
        return RequestInfo(kind, label(first.get("action_id"), BUTTONS), None, channel, user)
    if kind == "event_callback":
        event = body.get("event") if isinstance(body.get("event"), dict) else {}
        assert isinstance(event, dict)
        return RequestInfo(
            "event", label(event.get("type"), EVENTS), None, _text(event.get("channel")) or channel,
            _text(event.get("user")) or user,
        )
    return RequestInfo(label(kind, KINDS), "none", None, channel, user)


def describe_command(body: dict[str, Any], parsed: ParsedCommand, default_app: str) -> RequestInfo:
    """A slash command whose text is already parsed (`parse_command` of its `text`)."""
    return RequestInfo(
        "command", parsed.action.value, parsed.app or default_app,
        _text(body.get("channel_id")), _text(body.get("user_id")), _text(body.get("command")),
    )


def outcome_of(status: int) -> str:
    """The `outcome` label of a request's answer."""
    if status == 200:
        return "ok"
    if status == 404:
        return "unhandled"
    return "error" if status >= 500 else str(status)


class RequestObserver:
    """Counts and times each request (`slack_requests_total`, `slack_ack_duration_seconds`) and
    gives the work done for it a log context (request id, app, channel, user, command)."""

    def __init__(self, app_names: tuple[str, ...], default_app: str) -> None:
        self.app_names, self.default_app = app_names, default_app

    def describe(self, body: dict[str, Any]) -> RequestInfo:
        return describe_request(body, self.app_names, self.default_app)

    @contextmanager
    def observing(self, info: RequestInfo) -> Iterator[Callable[[int], None]]:
        """Within the block the request's log context is set; the block calls the function it is
        given with the answer's HTTP status once it has one, and the request is counted then, timed
        from the block's start. A block that ends without an answer counts nothing (the request goes
        on elsewhere, and is counted there)."""
        started = time.perf_counter()
        with bind_request(
            slack_request_id=new_request_id(), app=info.app, channel=info.channel, user=info.user,
            command=info.command,
        ):

            def answered(status: int) -> None:
                metrics.slack_request(info.kind, info.action, outcome_of(status), time.perf_counter() - started)

            yield answered


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _id(value: object) -> str | None:
    """A channel or user given as an id or as an object with an id (interactivity payloads)."""
    if isinstance(value, dict):
        value = value.get("id")
    return _text(value)
