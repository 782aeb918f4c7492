"""The message buttons: Refresh (re-render in place), Share in channel, a language change's
Confirm and Cancel, and a request's Approve and Reject (two-person approval).

Both ack at once; the lazy listener fetches and replies through the action's
`response_url`. A Refresh pressed on the home tab re-publishes the home view instead.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.deps import BotDeps, DeskApp
from bot.management.messages import APPROVE_ACTION, CANCEL_ACTION, CONFIRM_ACTION, REJECT_ACTION
from bot.slack import blocks
from handlers.answers import languages_reply
from handlers.home import publish_home

log = logging.getLogger(__name__)

# Never "try again" here: the failure may have come after Desk applied the write.
DECIDE_FAILED = (
    "Something went wrong on the bot's side while handling this button. Desk may have applied the change: "
    "look at the list (`/desk-languages`) before asking again. A change that was sent is recorded and posted "
    "to the audit channel within a few minutes; the details are in the bot's logs."
)


def register(app: App, deps: BotDeps) -> None:
    def ack_now(ack: Ack) -> None:
        ack()

    def refresh(body: dict[str, Any], client: WebClient) -> None:
        if body.get("container", {}).get("type") == "view":
            publish_home(deps, client, body["user"]["id"], refresh=True, app=_app_of(body))
            return
        reply = languages_reply(_clicked_app(deps, body), refresh=True)
        deps.responder.send(body["response_url"], reply.message, replace_original=True)

    def share(body: dict[str, Any]) -> None:
        response_url = body.get("response_url")
        if not response_url:
            # A click on the home tab (views published before it lost this button): no channel there.
            log.info("Share clicked where there is no channel to share to (%s)", body.get("container", {}).get("type"))
            return
        reply = languages_reply(_clicked_app(deps, body))
        message = reply.message
        if not reply.listed:  # an error is for the person who clicked, not for the channel
            deps.responder.send(response_url, message, response_type="ephemeral", replace_original=False)
            return
        user = body.get("user", {}).get("id")
        if user and message.get("blocks") is not None:
            note = blocks.context(f"Shared by {blocks.mention(user)}")
            message = {**message, "blocks": [*message["blocks"], note][: blocks.MAX_BLOCKS]}
        deps.responder.send(response_url, message, response_type="in_channel", replace_original=False)

    def decide(body: dict[str, Any]) -> None:
        """Confirm or Cancel on a language change (the result replaces the confirmation), or Approve
        or Reject on a request in the audit channel (two-person approval: the manager updates the
        request's message in place; the clicker alone sees the answer)."""
        action = (body.get("actions") or [{}])[0]
        request_id, user = str(action.get("value") or ""), str(body.get("user", {}).get("id") or "")
        response_url, action_id = body.get("response_url"), action.get("action_id")
        manager = deps.manager
        if manager is None or not response_url:
            return
        decisions = {CONFIRM_ACTION: manager.confirm, CANCEL_ACTION: manager.cancel,
                     APPROVE_ACTION: manager.approve, REJECT_ACTION: manager.reject}
        try:
            message = decisions[str(action_id)](request_id, user)
        except Exception:  # the user gets an apology; the log gets the details
            log.exception("Unexpected failure while deciding a language change")
            message = blocks.notice_message(DECIDE_FAILED)
        if action_id in (APPROVE_ACTION, REJECT_ACTION):  # on the channel's request: for the clicker only
            deps.responder.send(response_url, message, response_type="ephemeral", replace_original=False)
        else:
            deps.responder.send(response_url, message, replace_original=True)

    app.action(blocks.REFRESH_ACTION)(ack=ack_now, lazy=[refresh])
    app.action(blocks.SHARE_ACTION)(ack=ack_now, lazy=[share])
    app.action(CONFIRM_ACTION)(ack=ack_now, lazy=[decide])
    app.action(CANCEL_ACTION)(ack=ack_now, lazy=[decide])
    app.action(APPROVE_ACTION)(ack=ack_now, lazy=[decide])
    app.action(REJECT_ACTION)(ack=ack_now, lazy=[decide])


def _clicked_app(deps: BotDeps, body: dict[str, Any]) -> DeskApp:
    """The app a button was shown for; the default app when its message is older than the
    configuration (the app was renamed or removed since): a click still shows a list."""
    return deps.configured.get(_app_of(body)) or deps.default_app


def _app_of(body: dict[str, Any]) -> str | None:
    """The app a button was shown for: its value (buttons of one-app bots carry no app name)."""
    actions = body.get("actions") or [{}]
    value = actions[0].get("value") if isinstance(actions[0], dict) else None
    return value if isinstance(value, str) and value not in ("refresh", "share") else None
