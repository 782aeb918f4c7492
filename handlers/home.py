"""The app's Home tab: each app's language list, its readiness and which channels watch it or get
its digest, published when a user opens it."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.database import DB_DOWN_ERRORS
from bot.deps import BotDeps, DeskApp
from bot.desk import DeskError
from bot.slack import blocks
from bot.watch import messages as watch_messages
from bot.watch.messages import SUBSCRIPTIONS_UNREADABLE, SetUp
from handlers.answers import drift_of, languages_reply

log = logging.getLogger(__name__)


HOME_BLOCKS = 100  # Slack's limit for a Home tab view


def publish_home(
    deps: BotDeps, client: WebClient, user_id: str, *, refresh: bool = False, app: str | None = None
) -> None:
    """Every app's list (a Refresh click refreshes the app it was shown for), then the help."""
    listing: list[dict[str, Any]] = []
    for desk_app in deps.apps:
        again = refresh and (app is None or desk_app.name == app)
        listing += without_share_button(languages_reply(desk_app, refresh=again).message["blocks"])
        line, fixes = readiness_line(desk_app, fix=may_fix_on_home(deps, desk_app, user_id), deps=deps)
        listing.append(blocks.context(line))
        if fixes is not None:
            listing.append(fixes)
        listing.append(home_subscriptions(deps, desk_app))
        listing.append({"type": "divider"})
    help_blocks = blocks.help_message(apps=deps.app_names)["blocks"]
    view = {"type": "home", "blocks": [*listing[: HOME_BLOCKS - len(help_blocks)], *help_blocks]}
    try:
        client.views_publish(user_id=user_id, view=view)
    except SlackApiError as error:
        log.warning("Publishing the home tab failed: %s", error.response.get("error"))


def may_fix_on_home(deps: BotDeps, app: DeskApp, user: str) -> bool:
    """Whether the Home tab shows Fix buttons: the user may change the app's settings (a lazy path)."""
    return deps.manager is not None and deps.settings_editor is not None and deps.manager.admins.is_admin(
        app.name, user)


def readiness_line(
    app: DeskApp, *, fix: bool = False, deps: BotDeps | None = None
) -> tuple[str, blocks.Block | None]:
    """One line on the app's readiness for the Home tab (its report is cached for DESK_STATUS_TTL),
    the declared state's line under it when there is one, and, with `fix` (an admin), a Fix button
    per language the settings modal can fix."""
    try:
        report = app.client.readiness()
    except DeskError as error:
        return f":grey_question: *Readiness* could not be checked: {blocks.escape(error.meaning)}.", None
    icon = ":white_check_mark:" if report.ready else ":warning:"
    line = f"{icon} *Readiness:* {blocks.escape(report.summary())} (`status` for details)"
    drift = drift_of(deps, app, report)
    if drift is not None:
        line = f"{line}\n{drift}"
    return line, blocks.fix_buttons(report, app.render) if fix else None


def home_subscriptions(deps: BotDeps, app: DeskApp) -> blocks.Block:
    """The channels watching `app` and those with its digest (database reads: a lazy listener's)."""
    try:
        watching = [SetUp(w.channel_id, w.created_by, w.created_at)
                    for w in (deps.watch.watching(app.name) if deps.watch else [])]
        digests = [SetUp(d.channel_id, d.created_by, d.created_at, d.schedule if d.enabled else f"{d.schedule}, paused")
                   for d in (deps.digests.subscriptions(app.name) if deps.digests else [])]
    except DB_DOWN_ERRORS as error:
        log.warning("Home tab: the subscriptions could not be read (%s)", type(error).__name__)
        return blocks.context(SUBSCRIPTIONS_UNREADABLE)
    return watch_messages.subscriptions_block(watching, digests)


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
