"""The app's Home tab: the language list, published when a user opens it."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import blocks
from bot.app import BotDeps
from handlers.answers import languages_answer

log = logging.getLogger(__name__)


def publish_home(deps: BotDeps, client: WebClient, user_id: str, *, refresh: bool = False) -> None:
    message = languages_answer(deps, refresh=refresh)
    view = {"type": "home", "blocks": [*message["blocks"], *blocks.help_message()["blocks"]][:100]}
    try:
        client.views_publish(user_id=user_id, view=view)
    except SlackApiError as error:
        log.warning("Publishing the home tab failed: %s", error.response.get("error"))


def register(app: App, deps: BotDeps) -> None:
    def ack_event() -> None:
        """Events are acknowledged by Bolt itself; the work happens in the lazy listener."""

    def on_home_opened(event: dict[str, Any], client: WebClient) -> None:
        if event.get("tab") == "home":
            publish_home(deps, client, event["user"])

    app.event("app_home_opened")(ack=ack_event, lazy=[on_home_opened])
