"""`/desk-languages`: the slash command's two listeners (answered in the ack, or later by a lazy listener).

The ack answers at once and without I/O: help and unknown options always, and the
list itself when this process holds a fresh copy. Everything else (a cold cache, a
refresh, digest subscriptions) is acknowledged silently and answered through the
`response_url` by the lazy listener.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from bot.deps import BotDeps, DeskApp
from bot.desk.models import LanguageList
from bot.desk.readiness import ReadinessReport
from bot.slack import blocks
from bot.slack.grammar import COMMAND, Action, ParsedCommand, parse_command
from handlers.answers import (
    UNEXPECTED,
    apps_reply,
    compare_reply,
    drift_of,
    languages_reply,
    plan_reply,
    readiness_reply,
)
from handlers.settings import open_settings_modal

log = logging.getLogger(__name__)
IN_ACK = "desk_answer_in_ack"  # context key: what the matcher found the ack can answer with


@dataclass(frozen=True, slots=True)
class AckAnswer:
    """What a command's ack can carry, found without I/O: help, an unknown option's help, or a view
    (`held`) of the list or readiness report this process holds fresh, with what the message shows
    of it for this user (`fix`: status's Fix buttons). The rest of the message follows from `held`
    (the line on the declared state too), so it is worked out when the message is rendered."""

    parsed: ParsedCommand
    held: LanguageList | ReadinessReport | None = None
    fix: bool = False

    @property
    def reusable(self) -> bool:
        """Whether the message is the same for every ack with an equal `key` (an unknown option's
        help quotes what was typed, so it is made for each)."""
        return self.parsed.action is not Action.UNKNOWN

    @property
    def key(self) -> tuple[Any, ...]:
        """Names the message: with the same `held` object (the client hands out one view per value
        it holds) and the same key, the same message. Compare `held` by identity, not by key."""
        return (self.parsed.action, self.parsed.app, id(self.held), self.fix)


def find_ack_answer(deps: BotDeps, command: dict[str, Any], parsed: ParsedCommand) -> AckAnswer | None:
    """What the ack of `command` (its text parsed as `parsed`) can answer with, or None when the
    answer needs I/O (a lazy listener's). Help and unknown options always; the list while this
    process holds a fresh copy; `status` while it holds a fresh report. No I/O."""
    if parsed.action in (Action.HELP, Action.UNKNOWN):
        return AckAnswer(parsed)
    target = deps.app(parsed.app)
    if parsed.action in (Action.LIST, Action.SHARE, Action.DEFAULT) and (held := target.client.peek()):
        return AckAnswer(parsed, held)
    if parsed.action is Action.STATUS and not parsed.args and (report := target.client.peek_readiness()):
        # Fix buttons for admins listed by ID (no I/O here)
        return AckAnswer(parsed, report, may_fix(deps, parsed.app, command, listed=True))
    return None


def ack_message(deps: BotDeps, found: AckAnswer) -> tuple[blocks.Message, str]:
    """The message an ack carries for `found`, and its response type."""
    parsed, held = found.parsed, found.held
    if parsed.action is Action.HELP:
        return blocks.help_message(COMMAND, deps.app_names), "ephemeral"
    if parsed.action is Action.UNKNOWN:
        return blocks.unknown_option_message(parsed.raw, parsed.suggestion, COMMAND, deps.app_names), "ephemeral"
    target = deps.app(parsed.app)
    render = target.render
    if isinstance(held, ReadinessReport):
        message = blocks.readiness_message(held, render, fix=found.fix, drift=drift_of(deps, target, held))
    else:
        assert held is not None
        message = blocks.default_message(held, render) if parsed.action is Action.DEFAULT \
            else blocks.languages_message(held, render)
    return message, "in_channel" if parsed.action is Action.SHARE else "ephemeral"


def register(app: App, deps: BotDeps) -> None:
    # Two listeners, so that a command answered inside its ack starts no lazy listener:
    # Bolt starts every lazy function of the listener that matched (a deep copy of the
    # request and a hand-off to the executor), which cost more than the rest of the ack
    # together and held the worker to about half the requests/s of a bare Bolt app
    # (docs/benchmarks.md, ack path). The HTTP edge answers the same acks itself, before
    # Bolt's dispatch (bot/slack/ack_shortcut.py); these listeners answer them in Socket Mode
    # and with WEB_ACK_SHORTCUT=0, byte for byte alike.
    names = deps.app_names

    def answerable_in_ack(command: dict[str, Any], context: BoltContext) -> bool:
        """Help and unknown options always; the list while this process holds a fresh copy. No I/O."""
        found = find_ack_answer(deps, command, parse_command(command.get("text"), names))
        context[IN_ACK] = found
        return found is not None

    def ack_with_answer(ack: Ack, context: BoltContext) -> None:
        message, response_type = ack_message(deps, context[IN_ACK])
        ack(**message, response_type=response_type)

    def ack_silently(ack: Ack, command: dict[str, Any]) -> None:
        # Pure parsing, no I/O: a `status` that must ask Desk says what it is checking.
        parsed = parse_command(command.get("text"), names)
        if parsed.action is Action.STATUS:
            ack(**blocks.checking_message(deps.app(parsed.app).render))
        elif parsed.action is Action.PLAN:
            ack(**blocks.notice_message(f"{blocks.PROGRESS} Comparing Desk with the declared languages… "
                                        "the answer follows here."))
        else:
            ack()

    def is_settings(command: dict[str, Any]) -> bool:
        return parse_command(command.get("text"), names).action is Action.SETTINGS

    def open_settings(ack: Ack, command: dict[str, Any], client: WebClient) -> None:
        """`settings TAG`: a modal (or an ephemeral refusal), opened on the modal's own threads, not
        a lazy listener's: those may all be waiting on Desk, and the trigger_id lives about 3 s."""
        ack()
        parsed = parse_command(command.get("text"), names)
        deps.modal_threads.openers.submit(open_settings_modal, deps, client, command, deps.app(parsed.app),
                                          parsed.args)

    def answer_command(command: dict[str, Any], client: WebClient) -> None:
        parsed = parse_command(command.get("text"), names)
        listed = False
        if parsed.action is Action.DIGEST:
            message = digest_answer(deps, command, deps.app(parsed.app), parsed.args)
        elif parsed.action is Action.WATCH:
            message = watch_answer(deps, command, deps.app(parsed.app), parsed.args)
        elif parsed.action is Action.APPS:
            message = apps_reply(deps.apps)
        elif parsed.action is Action.COMPARE:
            message = compare_reply(deps.apps, parsed.args)
        elif parsed.action is Action.STATUS:
            message = readiness_reply(deps.app(parsed.app), refresh=parsed.args == "refresh",
                                      fix=may_fix(deps, parsed.app, command), deps=deps)
        elif parsed.action is Action.PLAN:
            message = plan_reply(deps, parsed.app, refresh=parsed.args == "refresh")
        elif parsed.action in (Action.ADD, Action.REMOVE, Action.HISTORY):
            message = change_answer(deps, command, parsed.action, deps.app(parsed.app), parsed.args)
        else:
            reply = languages_reply(
                deps.app(parsed.app),
                refresh=parsed.action is Action.REFRESH,
                default_only=parsed.action is Action.DEFAULT,
            )
            message, listed = reply.message, reply.listed
        # `share` puts the list in the channel; an error instead goes to the caller only.
        response_type = "in_channel" if parsed.action is Action.SHARE and listed else "ephemeral"
        deps.responder.send(command["response_url"], message, response_type=response_type, replace_original=False)

    app.command(COMMAND, matchers=[answerable_in_ack])(ack_with_answer)
    app.command(COMMAND, matchers=[is_settings])(open_settings)
    app.command(COMMAND)(ack=ack_silently, lazy=[answer_command])


def may_fix(deps: BotDeps, app: str | None, command: dict[str, Any], *, listed: bool = False) -> bool:
    """Whether `status` shows Fix buttons: the user may change the app's settings. In the ack
    (`listed`) only admins named by their user ID count: a user group's members are asked of Slack,
    which the ack never waits for (they get the buttons on `status refresh`)."""
    if deps.manager is None or deps.settings_editor is None:
        return False
    name, user = deps.app(app).name, str(command.get("user_id") or "")
    if listed:
        return user in deps.manager.admins.admins(name).users
    return deps.manager.admins.is_admin(name, user)


def _answer(work: Callable[[], dict[str, Any]], doing: str) -> dict[str, Any]:
    """`work()`'s reply, or an apology (the log gets the details): no traceback reaches the user."""
    try:
        return work()
    except Exception:
        log.exception("Unexpected failure while %s", doing)
        return blocks.notice_message(UNEXPECTED.replace("fetching the Desk languages", doing))


def change_answer(deps: BotDeps, command: dict[str, Any], action: Action, app: DeskApp, args: str) -> dict[str, Any]:
    """`add TAG`, `remove TAG` (a confirmation, or why not) and `history`."""
    manager = deps.manager
    if manager is None:
        return blocks.notice_message("Changing languages is not available in this installation.")
    if action is Action.HISTORY:
        return _answer(lambda: manager.history(app), "reading the change history")
    user = command.get("user_id", "")
    return _answer(lambda: manager.request(app, user, action.value, args), "preparing the change")


def digest_answer(deps: BotDeps, command: dict[str, Any], app: DeskApp, args: str) -> dict[str, Any]:
    digests = deps.digests
    if digests is None:
        return blocks.notice_message("Channel digests are not available in this installation.")
    channel, user = command.get("channel_id", ""), command.get("user_id")
    return _answer(lambda: digests.handle_command(channel, app.name, args, user_id=user), "updating the digest")


def watch_answer(deps: BotDeps, command: dict[str, Any], app: DeskApp, args: str) -> dict[str, Any]:
    """`watch` (subscribe, or show since when and by whom) and `watch off`."""
    watch = deps.watch
    if watch is None:
        return blocks.notice_message("Change alerts are not available in this installation.")
    channel, user = command.get("channel_id", ""), command.get("user_id")
    return _answer(lambda: watch.handle_command(channel, app.name, args, user_id=user), "updating the watch")
