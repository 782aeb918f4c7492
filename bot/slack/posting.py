"""Posting to a channel exactly once, the Slack side: shared by digests and watch alerts.

- `posting_client`: a copy of the process's WebClient for chat.postMessage that retries
  only a 429 (after its Retry-After): chat.postMessage has no idempotency key, so a reset
  or a 5xx is left to the caller's claim logic.
- `process_owner`: who holds a claim (host, pid, a random part).
- `find_message`: after taking over a claim left by a crashed process, whether the bot's
  message (found by its metadata) is in the channel after all. `HistoryUnavailable` means
  "cannot tell" (scope, membership, too much history to search).
- `SlackCallMeter`: counts every Slack Web API attempt (429s and retries included) in
  `slack_api_calls_total`; it goes first among a client's retry handlers, which slack_sdk
  consults after every attempt, and never asks for a retry itself.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import HttpRequest, HttpResponse, RetryHandler, RetryState
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot import metrics

HISTORY_PAGES = 10  # conversations.history pages (200 messages each) searched for a crashed claim


class HistoryUnavailable(Exception):
    """The channel's history could not be searched, so whether a message was posted is unknown."""


def process_owner() -> str:
    """Who holds a claim: host, pid and a random part (pids repeat across dynos and restarts)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


def posting_client(client: WebClient) -> WebClient:
    """A copy of `client` for chat.postMessage with only the 429 retry.

    chat.postMessage has no idempotency key: retrying after a reset connection or a
    5xx could post twice, so those are left to the claim logic. A 429 is a definite
    "not posted", safe to retry after Retry-After.
    """
    return WebClient(
        token=client.token,
        base_url=client.base_url,
        timeout=client.timeout,
        ssl=client.ssl,
        proxy=client.proxy,
        headers=dict(client.headers),
        logger=client._logger,  # keep the caller's logger (and its redaction)
        retry_handlers=[SlackCallMeter(), RateLimitErrorRetryHandler(max_retry_count=2)],
    )


class SlackCallMeter(RetryHandler):
    """Records each attempt's method and outcome (ok, Slack's error word, ratelimited, http_NNN,
    connection_error); never retries."""

    def can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        method = request.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        metrics.slack_api_call(method, call_outcome(response))
        return False


def call_outcome(response: HttpResponse | None) -> str:
    if response is None:
        return "connection_error"
    if response.status_code == 429:
        return "ratelimited"
    if response.status_code != 200:
        return f"http_{response.status_code}"
    body = response.body if isinstance(response.body, dict) else {}
    if body.get("ok", True):
        return "ok"
    return str(body.get("error") or "error")


def slack_error(error: SlackApiError) -> str:
    """Slack's error code of a refused call (`not_in_channel`, …)."""
    response: Any = error.response
    try:
        return str(response.get("error") or "unknown_error")
    except AttributeError:
        return "unknown_error"


def find_message(
    slack: WebClient,
    channel_id: str,
    event_type: str,
    matches: Callable[[dict[str, Any]], bool],
    *,
    oldest: float,
    pages: int = HISTORY_PAGES,
) -> str | None:
    """The ts of the bot's message in the channel since `oldest` whose metadata has `event_type`
    and a payload `matches` accepts, or None.

    Raises HistoryUnavailable when Slack refuses the history (scope, membership) or it is
    too long to search completely: both mean "cannot tell".
    """
    cursor: str | None = None
    for _ in range(pages):
        try:
            response = slack.conversations_history(
                channel=channel_id,
                oldest=f"{max(oldest, 0):.6f}",
                include_all_metadata=True,
                limit=200,
                cursor=cursor,
            )
        except SlackApiError as error:
            raise HistoryUnavailable(f"Slack says {slack_error(error)}") from None
        for message in response.get("messages") or []:
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if metadata.get("event_type") == event_type and isinstance(payload, dict) and matches(payload):
                return str(message["ts"])
        cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
        if not cursor:
            return None
    raise HistoryUnavailable(f"more than {pages * 200} messages since the scheduled time")
