"""The Bolt app: one `App` with every listener of `handlers/` registered.

Design choices that matter in production (docs/slack-platform.md §4.3-§4.6):
- `process_before_response=True`: the ack runs in the request thread and slow work
  goes to lazy listeners. Bolt's default runner polls for the ack every 10 ms, which
  caps a worker near 1,000 requests/s and puts 10 ms under every request.
- A larger listener executor than Bolt's five threads, shared by lazy listeners, so
  a few slow Desk calls cannot queue everything else behind them.
- The `WebClient` comes from the composition root (one per process, with retry
  handlers); Bolt copies it for every listener.
- Every request, over HTTP or Socket Mode, is counted and timed around `dispatch`
  (`ObservedApp`): with `process_before_response=True` that is the ack. Its log context
  (request id, app, channel, user, command) is set there and carried into lazy listeners,
  whose executor runs each task in a copy of the submitting thread's contextvars.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from slack_bolt import App
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk import WebClient

from bot.deps import BotDeps
from bot.logs import ContextExecutor
from handlers import register_all
from handlers.requests import RequestObserver

T = TypeVar("T")

LAZY_WORKERS = 32


def build_slack_app(deps: BotDeps, client: WebClient, *, signing_secret: str | None) -> App:
    """The Bolt app. Its construction calls Slack's `auth.test` once (a bad token fails here).

    `signing_secret` may be None in Socket Mode, where requests arrive over the app's own
    authenticated websocket and Bolt skips signature checks.
    """
    app = ObservedApp(
        app_names=deps.app_names,
        default_app=deps.default_app.name,
        client=client,
        signing_secret=signing_secret,
        process_before_response=True,
        listener_executor=ContextExecutor(max_workers=LAZY_WORKERS, thread_name_prefix="lazy"),
        # auth.test runs once here, so a bad token fails the boot, not the first command.
        token_verification_enabled=True,
        logger=_bolt_logger(),
    )
    register_all(app, deps)
    return app


def _bolt_logger() -> logging.Logger:
    """Bolt's logger, minus its boot warning that the token is unused: Bolt reads SLACK_BOT_TOKEN
    from the environment itself even though the token reaches it through our `WebClient`."""
    from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped

    logger = logging.getLogger("slack_bolt.App")
    # Bolt copies the root's level into its loggers when it makes them (slack_bolt.logger), so an
    # App built earlier under another level would pin it: ours follows the root's, as configured.
    logger.setLevel(logging.NOTSET)
    if not any(isinstance(f, _DropMessage) for f in logger.filters):
        logger.addFilter(_DropMessage(warning_client_prioritized_and_token_skipped()))
    return logger


class _DropMessage(logging.Filter):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != self.message


class ObservedApp(App):
    """Bolt's App, each request counted, its ack timed, and its log context set."""

    def __init__(self, *, app_names: tuple[str, ...], default_app: str, **kwargs: Any) -> None:
        self.observer = RequestObserver(app_names, default_app)
        super().__init__(**kwargs)

    def dispatch(self, req: BoltRequest) -> BoltResponse:
        info = self.observer.describe(req.body if isinstance(req.body, dict) else {})
        with self.observer.observing(info) as answered:
            response = super().dispatch(req)
            answered(response.status)
        return response
