"""The exactly-once poster (`post_once`) over an in-memory claim ledger and an in-memory channel:
every outcome, and that a post that may have landed is never blindly posted again."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.slack_response import SlackResponse

from bot.database import Claim, ClaimState
from bot.slack.posting import NothingToPost, Outcome, Posting, PostOutcome, post_once
from tests.support.clocks import Dial

LEASE = 600.0
CHANNEL, APP, KEY = "C1", "prod", "2026-03-30"
EVENT = "test_event"
MESSAGE = {"text": "hello", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hello"}}]}


@dataclass
class Row:
    state: ClaimState
    owner: str
    claimed_at: float
    ts: str | None = None
    error: str | None = None


@dataclass
class MemoryLedger:
    """The claim protocol of `bot.database.claim_row`, in a dict."""

    rows: dict[tuple[str, str, str], Row] = field(default_factory=dict)

    def claim(
        self, channel_id: str, app: str, key: str, owner: str, *, now: float, lease: float, scheduled_for: float
    ) -> Claim:
        row = self.rows.get((channel_id, app, key))
        if row is None:
            self.rows[(channel_id, app, key)] = Row(ClaimState.CLAIMED, owner, now)
            return Claim.NEW
        if row.state in (ClaimState.POSTED, ClaimState.SKIPPED):
            return Claim.DONE
        if row.state is ClaimState.RELEASED:
            row.state, row.owner, row.claimed_at = ClaimState.CLAIMED, owner, now
            return Claim.RETRY
        if row.claimed_at < now - lease:
            row.owner, row.claimed_at = owner, now
            return Claim.TAKEOVER
        return Claim.BUSY

    def _held(self, channel_id: str, app: str, key: str, owner: str) -> Row | None:
        row = self.rows[(channel_id, app, key)]
        return row if row.owner == owner and row.state is ClaimState.CLAIMED else None

    def mark_posted(self, channel_id: str, app: str, key: str, ts: str, now: float) -> None:
        row = self.rows[(channel_id, app, key)]
        row.state, row.ts, row.error = ClaimState.POSTED, ts, None

    def release(self, channel_id: str, app: str, key: str, owner: str, error: str) -> None:
        if row := self._held(channel_id, app, key, owner):
            row.state, row.error = ClaimState.RELEASED, error

    def skip(self, channel_id: str, app: str, key: str, owner: str, reason: str) -> None:
        if row := self._held(channel_id, app, key, owner):
            row.state, row.error = ClaimState.SKIPPED, reason

    def note_error(self, channel_id: str, app: str, key: str, owner: str, error: str) -> None:
        if row := self._held(channel_id, app, key, owner):
            row.error = error

    def state(self) -> ClaimState:
        return self.rows[(CHANNEL, APP, KEY)].state


def slack_refusal(code: str, status: int = 200) -> SlackApiError:
    response = SlackResponse(client=None, http_verb="POST", api_url="https://slack.test/api/x", req_args={},
                             data={"ok": False, "error": code}, headers={}, status_code=status)
    return SlackApiError(code, response)


@dataclass
class MemoryChannel:
    """The two Web API methods `post_once` uses, over a list of messages. `post_fails` is raised by
    the next post; with `lands` the message is kept anyway (Slack posted, the answer was lost)."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    post_fails: Exception | None = None
    lands: bool = False
    history_fails: Exception | None = None
    history_asked: list[str] = field(default_factory=list)

    def conversations_history(
        self, *, channel: str, cursor: str | None = None, include_all_metadata: bool | None = None,
        limit: int | None = None, oldest: str | None = None,
    ) -> Any:
        self.history_asked.append(oldest or "")
        if self.history_fails is not None:
            raise self.history_fails
        return {"messages": [m for m in reversed(self.messages) if float(m["ts"]) >= float(oldest or 0)]}

    def chat_postMessage(
        self, *, channel: str, text: str | None = None, blocks: Any = None, unfurl_links: bool | None = None,
        unfurl_media: bool | None = None, metadata: dict[str, Any] | None = None,
    ) -> Any:
        failure, self.post_fails = self.post_fails, None
        if failure is None or self.lands:
            self.messages.append({"ts": f"{1000 + len(self.messages)}.000100", "text": text, "metadata": metadata})
        if failure is not None:
            raise failure
        return {"ok": True, "ts": self.messages[-1]["ts"]}


@dataclass
class Poster:
    ledger: MemoryLedger = field(default_factory=MemoryLedger)
    channel: MemoryChannel = field(default_factory=MemoryChannel)
    timer: Dial[float] = field(default_factory=lambda: Dial(1000.0))
    composed: int = 0

    def compose(self) -> dict[str, Any]:
        self.composed += 1
        return MESSAGE

    def post(self, owner: str = "us", compose: Any = None) -> PostOutcome:
        posting = Posting("test post", CHANNEL, APP, KEY, EVENT, {"app": APP, "key": KEY}, scheduled_for=900.0)
        return post_once(posting, compose or self.compose, ledger=self.ledger, slack=self.channel,
                         poster=self.channel, owner=owner, timer=self.timer, lease=LEASE)

    def crashed_claim(self) -> None:
        """A process claimed the post and vanished; its lease has run out."""
        self.ledger.claim(CHANNEL, APP, KEY, "crashed", now=self.timer.value - LEASE - 1, lease=LEASE,
                          scheduled_for=900.0)


@pytest.fixture
def poster() -> Poster:
    return Poster()


def test_a_new_post_is_posted_with_its_metadata_and_recorded(poster: Poster) -> None:
    done = poster.post()
    assert done.outcome is Outcome.POSTED and done.ts == poster.channel.messages[0]["ts"]
    assert poster.channel.messages[0]["metadata"] == {"event_type": EVENT, "event_payload": {"app": APP, "key": KEY}}
    assert poster.ledger.state() is ClaimState.POSTED and poster.ledger.rows[(CHANNEL, APP, KEY)].ts == done.ts
    assert poster.post().outcome is Outcome.DONE and len(poster.channel.messages) == 1


def test_a_live_claim_of_another_process_is_left_alone(poster: Poster) -> None:
    poster.ledger.claim(CHANNEL, APP, KEY, "other", now=poster.timer.value - 10, lease=LEASE, scheduled_for=900.0)
    assert poster.post().outcome is Outcome.BUSY
    assert poster.composed == 0 and poster.channel.messages == []
    assert poster.ledger.rows[(CHANNEL, APP, KEY)].owner == "other"


def test_a_stale_claim_is_taken_over_and_posted_when_the_history_lacks_the_message(poster: Poster) -> None:
    poster.crashed_claim()
    poster.channel.messages.append({"ts": "950.000100", "metadata": {"event_type": EVENT,
                                                                     "event_payload": {"app": APP, "key": "other"}}})
    done = poster.post()
    assert done.outcome is Outcome.POSTED and len(poster.channel.messages) == 2
    assert poster.channel.history_asked == ["840.000000"]  # from a minute before it was due


def test_a_stale_claim_whose_message_is_in_the_channel_is_recorded_not_reposted(poster: Poster) -> None:
    poster.crashed_claim()
    poster.channel.messages.append({"ts": "950.000100", "metadata": {"event_type": EVENT,
                                                                     "event_payload": {"app": APP, "key": KEY}}})
    done = poster.post()
    assert done == PostOutcome(Outcome.FOUND, ts="950.000100")
    assert poster.composed == 0 and len(poster.channel.messages) == 1
    assert poster.ledger.state() is ClaimState.POSTED


def test_a_stale_claim_that_cannot_be_checked_is_skipped_rather_than_risk_a_second_post(poster: Poster) -> None:
    poster.crashed_claim()
    poster.channel.history_fails = slack_refusal("missing_scope")
    done = poster.post()
    assert done.outcome is Outcome.SKIPPED and done.error is not None and "missing_scope" in done.error
    assert poster.channel.messages == [] and poster.ledger.state() is ClaimState.SKIPPED
    assert poster.post().outcome is Outcome.DONE


def test_a_history_read_without_an_answer_keeps_the_claim(poster: Poster) -> None:
    poster.crashed_claim()
    poster.channel.history_fails = ConnectionResetError()
    assert poster.post().outcome is Outcome.IN_DOUBT
    assert poster.channel.messages == [] and poster.ledger.state() is ClaimState.CLAIMED


@pytest.mark.parametrize("failure", [TimeoutError(), slack_refusal("internal_error", status=503)],
                         ids=["no answer", "HTTP 503"])
def test_a_post_that_may_have_landed_is_never_blindly_posted_again(poster: Poster, failure: Exception) -> None:
    poster.channel.post_fails, poster.channel.lands = failure, True
    done = poster.post()
    assert done.outcome is Outcome.IN_DOUBT and done.attempted and done.refused is None
    assert poster.ledger.state() is ClaimState.CLAIMED  # kept, exactly like a crash
    assert poster.post("another process").outcome is Outcome.BUSY  # within the lease
    poster.timer.value += LEASE + 1
    assert poster.post("another process").outcome is Outcome.FOUND  # the history shows it landed
    assert len(poster.channel.messages) == 1 and poster.ledger.state() is ClaimState.POSTED


def test_a_refused_post_releases_the_claim_for_a_retry_and_says_why(poster: Poster) -> None:
    poster.channel.post_fails = slack_refusal("not_in_channel")
    done = poster.post()
    assert done == PostOutcome(Outcome.FAILED, error="Slack refused the post: not_in_channel",
                               refused="not_in_channel", attempted=True)
    assert poster.channel.messages == [] and poster.ledger.state() is ClaimState.RELEASED
    assert poster.post().outcome is Outcome.POSTED and len(poster.channel.messages) == 1


def test_nothing_to_post_releases_the_claim_without_posting(poster: Poster) -> None:
    def fails() -> dict[str, Any]:
        raise NothingToPost("Desk failed")

    assert poster.post(compose=fails) == PostOutcome(Outcome.FAILED, error="Desk failed")
    assert poster.channel.messages == [] and poster.ledger.state() is ClaimState.RELEASED
