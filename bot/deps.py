"""What the Slack listeners are given: the Desk apps, the digest and watch services and the settings.

This module sits below both the Slack app and `handlers/`, so each imports it without
importing the other. The composition root (`bot/boot.py`) builds one `BotDeps` per
process and hands it to every `register()`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property

from bot.changecontrol.declared import DeclaredState
from bot.config import DeskApps, Settings
from bot.desk import DeskClient, DeskError, LanguageList
from bot.digests.service import DigestService
from bot.logs import ContextExecutor
from bot.management.service import LanguageManager
from bot.management.settings_editor import SettingsEditor
from bot.slack.blocks import AppResult, RenderContext
from bot.slack.response_url import ResponseSender
from bot.watch.service import WatchService

MODAL_OPENERS = 4  # threads that only call Slack (views.open): a trigger_id lives about 3 s
MODAL_FILLERS = 16  # threads that read Desk for an open modal and update it


@dataclass
class ModalThreads:
    """The settings modal's own threads. Opening a modal must happen within the trigger_id's
    ~3 s, so it never queues behind Desk work: the lazy listeners' threads may all be waiting
    on a slow Desk (docs/benchmarks.md §10 measured trigger_ids expiring that way). `openers`
    only call Slack; `fillers` read Desk and fill the open modal."""

    openers: ThreadPoolExecutor = field(
        default_factory=lambda: ContextExecutor(max_workers=MODAL_OPENERS, thread_name_prefix="modal-open"))
    fillers: ThreadPoolExecutor = field(
        default_factory=lambda: ContextExecutor(max_workers=MODAL_FILLERS, thread_name_prefix="modal-fill"))


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
    manager: LanguageManager | None = None
    watch: WatchService | None = None
    settings_editor: SettingsEditor | None = None
    declared: DeclaredState | None = None  # desk-languages.toml (docs/change-control.md), when there is one
    modal_threads: ModalThreads = field(default_factory=ModalThreads)

    @property
    def default_app(self) -> DeskApp:
        """The app a command without an app name acts on (the first configured)."""
        return self.apps[0]

    @property
    def app_names(self) -> tuple[str, ...]:
        """The names a command may start with: none when the bot serves a single app."""
        return tuple(app.name for app in self.apps) if len(self.apps) > 1 else ()

    @cached_property
    def configured(self) -> DeskApps[DeskApp]:
        """`apps` by name (the same apps, in the same order)."""
        return DeskApps(self.apps)

    def app(self, name: str | None) -> DeskApp:
        """The app called `name`, the default app for None; `UnknownApp` for any other name."""
        return self.configured.app(name)


def _fetch(app: DeskApp) -> LanguageList | DeskError:
    try:
        return app.client.get_languages()
    except DeskError as error:
        return error


def fetch_all(apps: tuple[DeskApp, ...]) -> list[AppResult]:
    """Each app's list (or error) from its own cache, fetched concurrently: one app that hangs
    costs its own time budget (DESK_TIMEOUT + 1 s), not the others'."""
    if len(apps) == 1:
        return [(apps[0].render, _fetch(apps[0]))]
    with ThreadPoolExecutor(max_workers=len(apps), thread_name_prefix="apps") as pool:
        results = list(pool.map(_fetch, apps))
    return [(app.render, result) for app, result in zip(apps, results, strict=True)]
