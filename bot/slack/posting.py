"""Posting to a channel exactly once: shared by digests and watch alerts.

- `post_once`: the exactly-once protocol (claim in a `ClaimLedger`, take over a stale claim
  after searching the channel's history for the message's metadata, post with that metadata,
  classify a failure as definite or in doubt). Its callers differ only in what they post.
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

import logging
import os
import secrets
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import HttpRequest, HttpResponse, RetryHandler, RetryState
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot import metrics
from bot.database import Claim

log = logging.getLogger(__name__)

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
    slack: SlackClient,
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


class SlackClient(Protocol):
    """The two Web API methods exactly-once posting uses (a `WebClient` is one)."""

    def conversations_history(
        self,
        *,
        channel: str,
        cursor: str | None = None,
        include_all_metadata: bool | None = None,
        limit: int | None = None,
        oldest: str | None = None,
    ) -> Any: ...

    def chat_postMessage(
        self,
        *,
        channel: str,
        text: str | None = None,
        blocks: Sequence[dict[str, Any]] | None = None,
        unfurl_links: bool | None = None,
        unfurl_media: bool | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Any: ...


class ClaimLedger(Protocol):
    """Where claims on (channel, app, key) are kept: the digest store (key: the period) and the
    watch store (key: the change id). `claim` is one conditional write (`bot.database.claim_row`);
    the others change the claim only while `owner` holds it, except `mark_posted`."""

    def claim(
        self, channel_id: str, app: str, key: str, owner: str, *, now: float, lease: float, scheduled_for: float
    ) -> Claim: ...

    def mark_posted(self, channel_id: str, app: str, key: str, ts: str, now: float) -> None: ...

    def release(self, channel_id: str, app: str, key: str, owner: str, error: str) -> None: ...

    def skip(self, channel_id: str, app: str, key: str, owner: str, reason: str) -> None: ...

    def note_error(self, channel_id: str, app: str, key: str, owner: str, error: str) -> None: ...


class Outcome(StrEnum):
    POSTED = "posted"  # posted now
    FOUND = "found"  # a crashed claim's message was found in the channel and recorded
    DONE = "done"  # already posted (or skipped) earlier
    BUSY = "busy"  # another process holds the claim
    FAILED = "failed"  # definitely not posted; released for a retry
    IN_DOUBT = "in-doubt"  # may have posted; the claim stays until its lease runs out
    SKIPPED = "skipped"  # a crashed claim could not be verified; given up rather than risk a second post


@dataclass(frozen=True)
class Posting:
    """One message to post exactly once: where, under which claim, and the metadata that finds it
    in the channel's history. `matches` decides whether a payload found there is this message's
    (default: it has every item of `payload`)."""

    what: str  # for log lines: "digest", "watch alert"
    channel_id: str
    app: str
    key: str  # the claim's key within (channel, app): a period, a change id
    event_type: str
    payload: Mapping[str, Any]
    scheduled_for: float  # when it became due; the history is searched from a minute before
    matches: Callable[[Mapping[str, Any]], bool] | None = None

    def found_in(self, payload: Mapping[str, Any]) -> bool:
        if self.matches is not None:
            return self.matches(payload)
        return all(payload.get(name) == value for name, value in self.payload.items())


@dataclass(frozen=True)
class PostOutcome:
    outcome: Outcome
    ts: str | None = None
    error: str | None = None
    refused: str | None = None  # Slack's error code when it definitely refused the post
    attempted: bool = False  # chat.postMessage was called (for per-channel pacing)


class NothingToPost(Exception):
    """Raised by a `post_once` composer that cannot make the message (its source failed): the
    claim is released with this text as the reason, and the next attempt tries again."""


def post_once(
    posting: Posting,
    compose: Callable[[], Mapping[str, Any]],  # a Block Kit message: text and blocks
    *,
    ledger: ClaimLedger,
    slack: SlackClient,
    poster: SlackClient,
    owner: str,
    timer: Callable[[], float],
    lease: float,
) -> PostOutcome:
    """Post `compose()` to the channel unless some process (this one included) already did.

    `slack` reads the history (with every retry its owner configured); `poster` posts, retrying
    only a 429 (`posting_client`), since chat.postMessage has no idempotency key. `compose` runs
    only once the claim is won; what it records is the caller's business.
    """
    channel, app, key = posting.channel_id, posting.app, posting.key
    claim = ledger.claim(channel, app, key, owner, now=timer(), lease=lease, scheduled_for=posting.scheduled_for)
    if claim is Claim.DONE:
        return PostOutcome(Outcome.DONE)
    if claim is Claim.BUSY:
        return PostOutcome(Outcome.BUSY)
    if claim is Claim.TAKEOVER:
        verified = _verify_crashed_claim(posting, ledger, slack, owner, timer)
        if verified is not None:
            return verified
    try:
        message = compose()
    except NothingToPost as error:
        reason = str(error)
        ledger.release(channel, app, key, owner, reason)
        return PostOutcome(Outcome.FAILED, error=reason)
    try:
        response = poster.chat_postMessage(
            channel=channel,
            text=message["text"],
            blocks=message["blocks"],
            metadata={"event_type": posting.event_type, "event_payload": dict(posting.payload)},
            unfurl_links=False,
            unfurl_media=False,
        )
    except SlackApiError as error:
        return _refused(posting, ledger, owner, error)
    except Exception as error:  # noqa: BLE001  # timeout or reset: Slack may have posted
        reason = f"no answer from Slack ({type(error).__name__}); will check the channel after the lease"
        ledger.note_error(channel, app, key, owner, reason)
        log.warning("%s %s (app %s) %s in doubt: %s", posting.what, channel, app, key, reason)
        return PostOutcome(Outcome.IN_DOUBT, error=reason, attempted=True)
    ts = str(response["ts"])
    ledger.mark_posted(channel, app, key, ts, timer())
    return PostOutcome(Outcome.POSTED, ts=ts, attempted=True)


def _verify_crashed_claim(
    posting: Posting, ledger: ClaimLedger, slack: SlackClient, owner: str, timer: Callable[[], float]
) -> PostOutcome | None:
    """After taking over a stale claim: was the message posted after all? None means post it."""
    channel, app, key = posting.channel_id, posting.app, posting.key
    log.warning("%s %s (app %s) %s: taking over a stale claim; checking the channel history",
                posting.what, channel, app, key)
    try:
        ts = find_message(slack, channel, posting.event_type, posting.found_in, oldest=posting.scheduled_for - 60)
    except HistoryUnavailable as error:
        reason = f"could not check the channel for a {posting.what} already posted ({error}), so skipped"
        ledger.skip(channel, app, key, owner, reason)
        log.error("%s %s (app %s) %s: %s", posting.what, channel, app, key, reason)
        return PostOutcome(Outcome.SKIPPED, error=reason)
    except Exception as error:  # noqa: BLE001  # network trouble: keep the claim, retry after the lease
        reason = f"history check failed ({type(error).__name__}); retrying after the lease"
        ledger.note_error(channel, app, key, owner, reason)
        return PostOutcome(Outcome.IN_DOUBT, error=reason)
    if ts is None:
        return None
    ledger.mark_posted(channel, app, key, ts, timer())
    return PostOutcome(Outcome.FOUND, ts=ts)


def _refused(posting: Posting, ledger: ClaimLedger, owner: str, error: SlackApiError) -> PostOutcome:
    channel, app, key = posting.channel_id, posting.app, posting.key
    status = error.response.status_code if error.response is not None else 0
    if status >= 500:  # Slack may have posted before failing
        reason = f"Slack answered HTTP {status}; will check the channel after the lease"
        ledger.note_error(channel, app, key, owner, reason)
        return PostOutcome(Outcome.IN_DOUBT, error=reason, attempted=True)
    code = slack_error(error)
    reason = f"Slack refused the post: {code}"
    ledger.release(channel, app, key, owner, reason)
    return PostOutcome(Outcome.FAILED, error=reason, refused=code, attempted=True)
