"""Delivering a reply through a `response_url`, with retries, checked and logged.

Bolt's `respond()` returns the webhook response instead of raising, and its
`WebhookClient` retries only connection errors. Here 429 (honouring Retry-After)
and 5xx are retried too, within Slack's five uses of a response_url, and a failure
is logged once, with the status, never the URL (a response_url is a bearer
credential for 30 minutes). A 5xx after Slack did post could, rarely, show the
reply twice; losing it is the worse failure for someone waiting on an answer.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient

log = logging.getLogger(__name__)
TIMEOUT = 10


def send_response(
    response_url: str,
    message: dict[str, Any],
    *,
    response_type: str | None = None,
    replace_original: bool | None = None,
) -> bool:
    """POST `message` ({"text", "blocks"}) to `response_url`; True when Slack accepted it."""
    client = WebhookClient(
        response_url,
        timeout=TIMEOUT,
        retry_handlers=[
            # Slack accepts 5 uses of a response_url: at most 1 + 1 + 3 here.
            ConnectionErrorRetryHandler(max_retry_count=1),
            RateLimitErrorRetryHandler(max_retry_count=1),
            ServerErrorRetryHandler(max_retry_count=3),
        ],
    )
    try:
        response = client.send(
            text=message.get("text"),
            blocks=message.get("blocks"),
            response_type=response_type,
            replace_original=replace_original,
        )
    except Exception as error:  # noqa: BLE001  nothing may escape into Bolt's thread
        log.warning("Reply to Slack failed: %s", type(error).__name__)
        return False
    if response.status_code != 200:
        log.warning("Reply to Slack refused: HTTP %s %s", response.status_code, (response.body or "")[:100])
        return False
    return True
