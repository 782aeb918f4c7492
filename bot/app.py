"""Builds the Bolt app: one `WebClient`, the Desk client, and the listeners in `handlers/`.

Design choices that matter in production:
- `process_before_response=True`: the ack runs in the request thread and slow work
  goes to lazy listeners. Bolt's default runner polls for the ack every 10 ms, which
  caps a worker near 1,000 requests/s and puts 10 ms under every request
  (reference §2.1a).
- A larger listener executor than Bolt's five threads, shared by lazy listeners, so
  a few slow Desk calls cannot queue everything else behind them (reference §2.1).
- One `WebClient` with retry handlers for connection errors, 429 (Retry-After) and
  5xx; Bolt copies it for every listener.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.blocks import RenderContext
from bot.config import ConfigError, Settings
from bot.desk import DeskClient, build_desk_client, region_label

if TYPE_CHECKING:
    from bot.digests.service import DigestService

log = logging.getLogger(__name__)

LAZY_WORKERS = 32
API_CALL_TIMEOUT = 10  # seconds for one Slack Web API call


@dataclass(frozen=True)
class BotDeps:
    """What the listeners need, built once and passed to every `register()`."""

    settings: Settings
    desk: DeskClient
    render: RenderContext
    digests: DigestService | None = None


def build_web_client(settings: Settings) -> WebClient:
    token = settings.slack_bot_token.value if settings.slack_bot_token else None
    client = WebClient(token=token, base_url=settings.slack_api_url, timeout=API_CALL_TIMEOUT)
    client.retry_handlers = [
        ConnectionErrorRetryHandler(max_retry_count=1),
        RateLimitErrorRetryHandler(max_retry_count=2),
        ServerErrorRetryHandler(max_retry_count=1),
    ]
    return client


def build_deps(settings: Settings, client: WebClient, *, desk: DeskClient | None = None) -> BotDeps:
    desk = desk or build_desk_client(settings)
    render = RenderContext(sdkappid=desk.sdkappid, region=region_label(settings))
    digests = None
    try:
        from bot.digests.service import build_digest_service
    except ImportError:  # digests are an optional part of the product
        log.debug("digest support is not installed")
    else:
        digests = build_digest_service(settings, desk, client)
    return BotDeps(settings=settings, desk=desk, render=render, digests=digests)


def _bolt_logger() -> logging.Logger:
    """Bolt's logger, minus its boot warning that the token is unused: Bolt reads SLACK_BOT_TOKEN
    from the environment itself even though the token reaches it through our `WebClient`."""
    from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped

    logger = logging.getLogger("slack_bolt.App")
    if not any(isinstance(f, _DropMessage) for f in logger.filters):
        logger.addFilter(_DropMessage(warning_client_prioritized_and_token_skipped()))
    return logger


class _DropMessage(logging.Filter):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != self.message


def slack_boot_error(error: Exception) -> ConfigError:
    """The one-line configuration error for a failed auth.test at boot."""
    if not isinstance(error, SlackApiError) and isinstance(error.__context__, SlackApiError):
        error = error.__context__  # Bolt's App() re-raises a refused auth.test as a BoltError
    if isinstance(error, SlackApiError):
        reason = error.response.get("error", "rejected") if error.response is not None else "rejected"
        return ConfigError(
            "SLACK_BOT_TOKEN",
            f"was refused by Slack's auth.test ({reason})",
            "Copy the Bot User OAuth Token (xoxb-…) from the Slack app's OAuth & Permissions page.",
        )
    return ConfigError(
        "SLACK_API_URL",
        f"Slack could not be reached to check the token ({type(error).__name__})",
        "Check the network, or SLACK_API_URL if you set it.",
    )


def start_background_jobs(deps: BotDeps) -> None:
    """The digest ticker, when digests are available and DIGEST_TICKER is on."""
    if deps.digests is not None and deps.settings.digest_ticker:
        deps.digests.start_ticker()


def build_app(
    settings: Settings,
    *,
    client: WebClient | None = None,
    deps: BotDeps | None = None,
    socket_mode: bool = False,
) -> App:
    """The Bolt app, with every listener registered. Raises `ConfigError` on bad Slack config."""
    if socket_mode:
        settings.require_slack_socket()
    else:
        settings.require_slack_http()
    client = client or build_web_client(settings)
    try:
        app = App(
            client=client,
            signing_secret=settings.slack_signing_secret.value if settings.slack_signing_secret else None,
            process_before_response=True,
            listener_executor=ThreadPoolExecutor(max_workers=LAZY_WORKERS, thread_name_prefix="lazy"),
            # auth.test runs once here, so a bad token fails the boot, not the first command.
            token_verification_enabled=True,
            logger=_bolt_logger(),
        )
    except Exception as error:  # noqa: BLE001  auth.test refused, or Slack unreachable
        raise slack_boot_error(error) from None

    from handlers import register_all

    register_all(app, deps or build_deps(settings, client))
    return app
