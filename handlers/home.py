"""The app's Home tab: the language list, published when a user opens it."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import blocks
from bot.deps import BotDeps
from handlers.answers import languages_reply

log = logging.getLogger(__name__)


def publish_home(deps: BotDeps, client: WebClient, user_id: str, *, refresh: bool = False) -> None:
    listing = without_share_button(languages_reply(deps.default_app, refresh=refresh).message["blocks"])
    view = {"type": "home", "blocks": [*listing, *blocks.help_message()["blocks"]][:100]}
    try:
        client.views_publish(user_id=user_id, view=view)
    except SlackApiError as error:
        log.warning("Publishing the home tab failed: %s", error.response.get("error"))


def without_share_button(message_blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The home tab has no channel to share to (and a click there has no response_url)."""
    kept = []
    for block in message_blocks:
        if block.get("type") == "actions":
            elements = [e for e in block.get("elements", []) if e.get("action_id") != blocks.SHARE_ACTION]
            if not elements:
                continue
            block = {**block, "elements": elements}
        kept.append(block)
    return kept


def register(app: App, deps: BotDeps) -> None:
    def ack_event() -> None:
        """Events are acknowledged by Bolt itself; the work happens in the lazy listener."""

    def on_home_opened(event: dict[str, Any], client: WebClient) -> None:
        if event.get("tab") == "home":
            publish_home(deps, client, event["user"])

    app.event("app_home_opened")(ack=ack_event, lazy=[on_home_opened])
