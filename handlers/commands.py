"""`/desk-languages`: the slash command listener.

The ack answers at once and without I/O: help and unknown options always, and the
list itself when this process holds a fresh copy. Everything else (a cold cache, a
refresh, digest subscriptions) is acknowledged silently and answered through the
`response_url` by the lazy listener.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, BoltContext

from bot import blocks
from bot.app import BotDeps
from bot.commands import Action, parse_command
from bot.replies import send_response
from handlers.answers import UNEXPECTED, languages_reply

log = logging.getLogger(__name__)
COMMAND = "/desk-languages"
ANSWERED = "desk_answered_in_ack"  # context flag: the ack already carried the answer


def register(app: App, deps: BotDeps) -> None:
    def ack_command(ack: Ack, command: dict[str, Any], context: BoltContext) -> None:
        parsed = parse_command(command.get("text"))
        name = command.get("command") or COMMAND
        if parsed.action is Action.HELP:
            context[ANSWERED] = True
            ack(**blocks.help_message(name))
        elif parsed.action is Action.UNKNOWN:
            context[ANSWERED] = True
            ack(**blocks.unknown_option_message(parsed.raw, parsed.suggestion, name))
        elif parsed.action in (Action.LIST, Action.SHARE, Action.DEFAULT) and (held := deps.desk.peek()):
            context[ANSWERED] = True
            if parsed.action is Action.DEFAULT:
                message = blocks.default_message(held, deps.render)
            else:
                message = blocks.languages_message(held, deps.render)
            ack(**message, response_type="in_channel" if parsed.action is Action.SHARE else "ephemeral")
        else:
            ack()

    def answer_command(command: dict[str, Any], context: BoltContext) -> None:
        if context.get(ANSWERED):
            return
        parsed = parse_command(command.get("text"))
        listed = False
        if parsed.action is Action.DIGEST:
            message = digest_answer(deps, command, parsed.args)
        else:
            message, listed = languages_reply(
                deps,
                refresh=parsed.action is Action.REFRESH,
                default_only=parsed.action is Action.DEFAULT,
            )
        # `share` puts the list in the channel; an error instead goes to the caller only.
        response_type = "in_channel" if parsed.action is Action.SHARE and listed else "ephemeral"
        send_response(command["response_url"], message, response_type=response_type, replace_original=False)

    app.command(COMMAND)(ack=ack_command, lazy=[answer_command])


def digest_answer(deps: BotDeps, command: dict[str, Any], args: str) -> dict[str, Any]:
    if deps.digests is None:
        return blocks.notice_message("Channel digests are not available in this installation.")
    try:
        message: dict[str, Any] = deps.digests.handle_command(command.get("channel_id", ""), args)
    except Exception:  # the user gets an apology; the log gets the details
        log.exception("Unexpected failure in a digest command")
        return blocks.notice_message(UNEXPECTED.replace("fetching the Desk languages", "updating the digest"))
    return message
