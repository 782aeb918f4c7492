"""What the Slack listeners are given: the Desk apps, the digest service and the settings.

This module sits below both the Slack app and `handlers/`, so each imports it without
importing the other. The composition root (`bot/boot.py`) builds one `BotDeps` per
process and hands it to every `register()`.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.blocks import RenderContext
from bot.config import Settings
from bot.desk import DeskClient
from bot.digests.service import DigestService
from bot.response_url import ResponseSender


@dataclass(frozen=True)
class DeskApp:
    """One Desk app the bot serves: its client and how Slack messages describe it."""

    name: str
    client: DeskClient
    render: RenderContext


@dataclass(frozen=True)
class BotDeps:
    """Built once per process by the composition root and passed to every listener."""

    settings: Settings
    apps: tuple[DeskApp, ...]
    responder: ResponseSender
    digests: DigestService | None = None

    @property
    def default_app(self) -> DeskApp:
        """The app a command without an app name acts on (the first configured)."""
        return self.apps[0]
