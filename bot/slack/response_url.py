"""Delivering a reply through a `response_url`, with retries, checked and logged.

Only Slack's own reply hosts are posted to (`https://hooks.slack.com/…`,
`https://hooks.slack-gov.com/…`) or the origin of SLACK_API_URL (tests, GovSlack,
proxies): a signed request can carry any `response_url`, and posting wherever it
points would let whoever holds the signing secret (or a replayed request) make the
bot call internal addresses. A refused URL is logged with its host, never its path.

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
from urllib.parse import urlsplit

from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient

log = logging.getLogger(__name__)
TIMEOUT = 10
REPLY_ORIGINS = ("https://hooks.slack.com", "https://hooks.slack-gov.com")


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]`, lower-cased, or None for anything that is not an http(s) URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


class ResponseSender:
    """Posts replies to `response_url`s on the allowed origins only."""

    def __init__(self, slack_api_url: str) -> None:
        self.allowed = {*REPLY_ORIGINS, *filter(None, [origin_of(slack_api_url)])}

    def allows(self, response_url: str) -> bool:
        return origin_of(response_url) in self.allowed

    def send(
        self,
        response_url: str,
        message: dict[str, Any],
        *,
        response_type: str | None = None,
        replace_original: bool | None = None,
    ) -> bool:
        """POST `message` ({"text", "blocks"}) to `response_url`; True when Slack accepted it."""
        if not self.allows(response_url):
            host = (urlsplit(response_url).hostname or "?")[:100] if origin_of(response_url) else "not an http(s) URL"
            log.warning("Refused to post a reply to a response_url outside Slack's hosts (host %s)", host)
            return False
        return _post(response_url, message, response_type=response_type, replace_original=replace_original)


def _post(
    response_url: str,
    message: dict[str, Any],
    *,
    response_type: str | None,
    replace_original: bool | None,
) -> bool:
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
