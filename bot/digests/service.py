"""The digest service: subscriptions from Slack, and posting each due digest exactly once.

Subscriptions are per (channel, Desk app): a channel may follow the `prod` app daily and
`staging` weekly. The service is given every configured app (`DigestApp`: name, client,
render context: `ConfiguredApp`); the first is the default app, which a command without an app name means,
and which owns whatever was stored before several apps existed.

How a (channel, app, period) gets posted exactly once, by any number of processes (steps 2 to 5
are `post_once`, the poster watch alerts use too):
1. `tick(now)` finds each enabled subscription's latest scheduled time <= now; it is
   due if it is no older than DIGEST_GRACE and not before the subscription began.
   The period id comes from that scheduled time, never from `now`.
2. The process claims (channel, app, period) in the database (`DigestStore.claim`, one
   conditional write: only one process can win it). Losers move on.
3. The winner fetches the list from that app's Desk client (stale list → posted with its
   warning; no list at all → claim released with the error, retried next tick), records
   what it is about to show, posts with the period and the app in the message metadata,
   then stores `ts`.
4. A definite Slack error (an answer that says it did not post) releases the claim.
   An ambiguous one (timeout, reset, 5xx: it may have posted) keeps the claim,
   exactly like a crash does.
5. A claim older than the lease is taken over, and the taker first reads the
   channel's history since the scheduled time for the bot's message carrying that
   period and app (a message without an app is the default app's: it was posted before
   several apps): found → recorded as posted; absent → posted; the history cannot be
   read → the period is skipped rather than risk a second post.

Two clocks: `clock` says what time it is for schedules (the CLI's `--now` replaces
it), `timer` measures real elapsed time for claim leases, since a crashed process's
lease runs out in real seconds whatever time the schedule is pretending it is.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

from slack_sdk import WebClient

from bot import metrics
from bot.config import ConfigError, DeskApps, Settings
from bot.database import DatabaseUnavailable
from bot.desk.changes import diff
from bot.desk.errors import DeskError
from bot.desk.models import LanguageList
from bot.desk.readiness import ReadinessReport
from bot.digests import messages
from bot.digests.messages import AppTitle, app_label, digest_message
from bot.digests.schedule import Schedule, ScheduleError, parse_schedule
from bot.digests.store import LEGACY_APP, DigestStore, PostState, Subscription
from bot.slack.blocks import ConfiguredApp, Message
from bot.slack.posting import NothingToPost, Outcome, Posting, post_once, posting_client, process_owner

log = logging.getLogger(__name__)

EVENT_TYPE = "desk_languages_digest"
DEFAULT_LEASE = 600.0  # seconds a claim protects a post in progress; far above one post's worst case
INVITE_HINT = "The last digest could not be posted: invite the bot to this channel (`/invite`, then pick the bot)."
OFF_WORDS = ("off", "stop", "unsubscribe", "cancel")
# (app, its readiness report) -> the digest's line on the declared state (change control's
# `drift_line`), or None: the app is not declared.
DriftOf = Callable[[str, ReadinessReport], str | None]


@dataclass(frozen=True)
class DigestSettings:
    """What the configuration tells digests (DIGEST_DEFAULT_TZ, DIGEST_GRACE, DIGEST_CHANNEL, DIGEST_SCHEDULE)."""

    default_tz: str = "UTC"
    grace: float = 6 * 3600.0  # seconds a missed digest is still posted
    channel: str | None = None  # DIGEST_CHANNEL: subscribed to the default app from `schedule`
    schedule: str | None = None

    @classmethod
    def of(cls, settings: Settings) -> DigestSettings:
        return cls(settings.digest_default_tz, settings.digest_grace, settings.digest_channel, settings.digest_schedule)


class LanguageSource(Protocol):
    def get_languages(self, refresh: bool = False) -> LanguageList: ...

    def readiness(self, refresh: bool = False) -> ReadinessReport: ...


DigestApp = ConfiguredApp[LanguageSource]  # `bot.deps.DeskApp` is one


@dataclass(frozen=True)
class PostResult:
    channel_id: str
    app: str
    period: str
    outcome: Outcome
    ts: str | None = None
    error: str | None = None


@dataclass
class TickReport:
    now: datetime
    results: list[PostResult] = field(default_factory=list)
    named: bool = False  # several apps: the summary names each result's app

    def of(self, outcome: Outcome) -> list[PostResult]:
        return [r for r in self.results if r.outcome is outcome]

    @property
    def failed(self) -> list[PostResult]:
        return [r for r in self.results if r.outcome in (Outcome.FAILED, Outcome.SKIPPED)]

    def summary(self) -> str:
        if not self.results:
            return f"{self.now:%Y-%m-%d %H:%M} UTC: no digest due"
        parts = [
            f"{r.channel_id} {f'{r.app} ' if self.named else ''}{r.period}: {r.outcome}"
            + (f" ({r.error})" if r.error else "")
            for r in self.results
        ]
        return f"{self.now:%Y-%m-%d %H:%M} UTC: " + "; ".join(parts)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DigestService:
    """Digests of every configured Desk app. `apps[0]` is the default app; the store must have
    been built for the same app names, in the same order (`DigestStore(engine, apps=…)`)."""

    def __init__(
        self,
        store: DigestStore,
        apps: Sequence[DigestApp],
        slack: WebClient,
        settings: DigestSettings,
        clock: Callable[[], datetime] = _utcnow,
        *,
        timer: Callable[[], float] = time.time,
        lease: float = DEFAULT_LEASE,
        owner: str | None = None,
        drift_of: DriftOf | None = None,
    ) -> None:
        self.apps = DeskApps(apps)
        self.drift_of = drift_of
        if store.apps != self.apps.names:
            raise ValueError(
                f"the digest store was built for the apps {list(store.apps)}, the service for {list(self.apps.names)}: "
                "build it with DigestStore(engine, apps=[app.name for app in apps])"
            )
        self.default_app = self.apps.default
        self.named = self.apps.several  # replies and digests name the app only when there is a choice
        self.store = store
        self.slack = slack  # reads (history) may use every retry the caller configured
        self.poster = posting_client(slack)
        self.settings = settings
        self.clock = clock
        self.timer = timer
        self.lease = lease
        self.owner = owner or process_owner()
        self.failing_since: float | None = None  # when the database (or a tick) began failing
        self._ignored_apps: set[str] = set()  # apps with stored subscriptions but not configured (logged once)

    def app(self, name: str | None = None) -> DigestApp:
        """The configured app `name` (the default app for None); `UnknownApp` for any other name."""
        return self.apps.app(name)

    def _title(self, app: DigestApp) -> AppTitle | None:
        return AppTitle(app.name, app_label(app.render)) if self.named else None

    # --- health ----------------------------------------------------------------------------------

    def health(self) -> str:
        """For /healthz: "degraded" while ticks fail (the database is down, typically), else "ok"."""
        return "degraded" if self.failing_since is not None else "ok"

    def tick_failed(self, error: BaseException) -> None:
        """One line for the first failure of an outage, not a traceback every minute."""
        if self.failing_since is None:
            self.failing_since = self.timer()
            # DatabaseUnavailable's text is safe (it names DATABASE_URL and the host only); other
            # errors may carry a driver's message, so only their type is shown.
            reason = str(error) if isinstance(error, DatabaseUnavailable) else type(error).__name__
            log.warning(
                "digests unavailable (%s); the slash command still works, digests retry every tick. "
                "Check DATABASE_URL and that the database is up.",
                reason,
            )

    def tick_succeeded(self) -> None:
        if self.failing_since is not None:
            log.info("digests are available again after %.0f s", self.timer() - self.failing_since)
            self.failing_since = None

    # --- the slash command ---------------------------------------------------------------

    def handle_command(
        self, channel_id: str, app: str, args: str, user_tz: str | None = None, *, user_id: str | None = None
    ) -> Message:
        """Answer `/desk-languages [APP] digest <args>` for `channel_id` and the configured app `app`.
        `user_id` (who typed it) is recorded with a new or replaced subscription; the digest
        belongs to the channel."""
        target = self.app(app)
        title = self._title(target)
        words = args.split()
        if not words:
            return self._status(channel_id, target, user_tz)
        if len(words) == 1 and words[0].casefold() in OFF_WORDS:
            previous = self.store.get_subscription(channel_id, target.name)
            self.store.delete_subscription(channel_id, target.name)
            return messages.stopped_message(previous, title)
        try:
            schedule = parse_schedule(args, self.settings.default_tz)
        except ScheduleError as error:
            return messages.error_reply(str(error), title)
        now = self.clock()
        previous = self.store.get_subscription(channel_id, target.name)
        if previous is None or previous.schedule != schedule.text() or not previous.enabled:
            self.store.put_subscription(channel_id, target.name, schedule.text(), now.timestamp(), user_id)
        log.info("digest subscription for %s (app %s): %s", channel_id, target.name, schedule.text())
        return messages.subscribed_message(schedule, schedule.next_after(now), previous, user_tz, title)

    def _status(self, channel_id: str, app: DigestApp, user_tz: str | None) -> Message:
        subscription = self.store.get_subscription(channel_id, app.name)
        schedule = next_at = None
        if subscription is not None:
            schedule = self._schedule_of(subscription)
            next_at = schedule.next_after(self.clock()) if schedule else None
        last = self.store.latest_post(channel_id, app.name) if subscription is not None else None
        return messages.status_message(subscription, schedule, next_at, last, user_tz, self._title(app))

    def subscriptions(self, app: str) -> list[Subscription]:
        """Every channel's digest of the configured app `app` (paused ones too), for the Home tab."""
        return self.store.subscriptions(self.app(app).name)

    def _schedule_of(self, subscription: Subscription) -> Schedule | None:
        try:
            return parse_schedule(subscription.schedule, self.settings.default_tz)
        except ScheduleError:  # stored text is canonical; only a tzdata change could break it
            log.error(
                "digest schedule for %s (app %s) no longer parses: %r",
                subscription.channel_id,
                subscription.app,
                subscription.schedule,
            )
            return None

    def configured_schedule(self) -> Schedule | None:
        """DIGEST_SCHEDULE, parsed (None when unset). Raises `ConfigError`; touches no database,
        so the boot can check it even while the database is down."""
        text = self.settings.schedule
        if not self.settings.channel or not text:
            return None
        try:
            return parse_schedule(text, self.settings.default_tz)
        except ScheduleError as error:
            example = messages.EXAMPLES[1].removeprefix("digest ")
            raise ConfigError("DIGEST_SCHEDULE", str(error).rstrip("."), f"For example: {example}.") from None

    def seed_from_settings(self) -> None:
        """Create or update DIGEST_CHANNEL's subscription to the default app from DIGEST_SCHEDULE
        (idempotent)."""
        schedule, channel = self.configured_schedule(), self.settings.channel
        if schedule is None or channel is None:
            return
        app = self.default_app.name
        existing = self.store.get_subscription(channel, app)
        if existing is not None and existing.schedule == schedule.text():
            if not existing.enabled:
                log.warning(
                    "DIGEST_CHANNEL %s is paused (%s); subscribe it again from Slack to resume",
                    channel,
                    existing.disabled_reason,
                )
            return  # unchanged: keep its start time, so catch-up after a restart still works
        self.store.put_subscription(channel, app, schedule.text(), self.clock().timestamp())
        log.info("digest subscription for %s (app %s) seeded from DIGEST_SCHEDULE: %s", channel, app, schedule.text())

    # --- posting -----------------------------------------------------------------------------

    def tick(self, now: datetime | None = None) -> TickReport:
        """One pass: post every (channel, app, period) that is due and not yet posted."""
        now = now or self.clock()
        report = TickReport(now, named=self.named)
        grace = self.settings.grace
        due: list[tuple[str, DigestApp, str, float]] = []
        for subscription in self.store.enabled_subscriptions():
            app = self.apps.get(subscription.app)
            if app is None:  # never posted with another app's client
                self._ignore_app(subscription.app)
                continue
            schedule = self._schedule_of(subscription)
            if schedule is None:
                continue
            scheduled = schedule.last_at_or_before(now)
            if scheduled is None or scheduled.timestamp() < subscription.effective_at:
                continue
            if (now - scheduled).total_seconds() > grace:
                continue  # missed by more than DIGEST_GRACE: wait for the next one
            due.append((subscription.channel_id, app, schedule.period_of(scheduled), scheduled.timestamp()))
        # One query for what is already settled, so a tick in which nothing is new costs two reads.
        settled = self.store.get_posts([(channel, app.name, period) for channel, app, period, _ in due])
        for channel, app, period, scheduled_for in due:
            record = settled.get((channel, app.name, period))
            if record is not None and record.state in (PostState.POSTED, PostState.SKIPPED):
                report.results.append(PostResult(channel, app.name, period, Outcome.DONE))
            else:
                report.results.append(self._post_period(channel, app, period, scheduled_for))
        for result in report.results:
            if result.outcome not in (Outcome.DONE, Outcome.BUSY):
                metrics.digest_post(result.outcome.value)
                log.info("digest %s (app %s) %s: %s%s", result.channel_id, result.app, result.period, result.outcome,
                         f" ({result.error})" if result.error else "")
        return report

    def _ignore_app(self, name: str) -> None:
        if name in self._ignored_apps:
            return
        self._ignored_apps.add(name)
        if name == LEGACY_APP:  # adopted by the default app at boot; the rows stay for a rollback
            log.info("digest subscriptions stored for the app %r are now the app %r's; the old rows are not posted",
                     name, self.default_app.name)
        else:
            log.warning(
                "digest subscriptions of the Desk app %r are not posted: it is not configured (configured: %s)",
                name,
                ", ".join(self.apps.names),
            )

    def post_now(self, channel_id: str, app: str | None = None) -> PostResult:
        """Post a digest of `app` (default: the default app) to `channel_id` at once, outside its
        schedule (`digest --channel`)."""
        target = self.app(app)
        now = self.clock()
        period = f"manual-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"
        result = self._post_period(channel_id, target, period, now.timestamp())
        metrics.digest_post(result.outcome.value)
        return result

    def _post_period(self, channel_id: str, app: DigestApp, period: str, scheduled_for: float) -> PostResult:
        name = app.name
        posting = Posting(
            "digest", channel_id, name, period, EVENT_TYPE, {"period": period, "app": name}, scheduled_for,
            matches=lambda payload: payload.get("period") == period and self.message_app(payload) == name,
        )
        done = post_once(
            posting, partial(self._compose, channel_id, app, period),
            ledger=self.store, slack=self.slack, poster=self.poster, owner=self.owner, timer=self.timer,
            lease=self.lease,
        )
        if done.outcome in (Outcome.POSTED, Outcome.FOUND):
            # What the message showed (recorded before posting) is what the next digest compares with.
            record = self.store.get_post(channel_id, name, period)
            if record is not None and record.shown:
                self.store.put_snapshot(channel_id, name, LanguageList.from_json(record.shown), period, self.timer())
            self.store.clear_hint(channel_id, name)
        elif done.refused is not None:
            self._post_refused(channel_id, name, period, done.refused)
        return PostResult(channel_id, name, period, done.outcome, ts=done.ts, error=done.error)

    def message_app(self, payload: Mapping[str, Any]) -> str:
        """Which app a digest message's metadata payload is of. Without an app it was posted before
        several apps: the default app's; so is `default` once the default app adopted it."""
        named = payload.get("app")
        if not isinstance(named, str) or not named:
            return self.default_app.name
        if named == LEGACY_APP and LEGACY_APP not in self.apps:
            return self.default_app.name
        return named

    def _compose(self, channel_id: str, app: DigestApp, period: str) -> Message:
        """The digest of `app` for the claimed period, recorded as shown before it is posted."""
        try:
            languages = app.client.get_languages()
        except DeskError as error:
            raise NothingToPost(f"Desk failed and no earlier list is known: {error}") from None
        changes = diff(self.store.get_snapshot(channel_id, app.name), languages)
        report = _readiness(app)
        drift = self.drift_of(app.name, report) if self.drift_of is not None and report is not None else None
        message = digest_message(languages, changes, app.render, named=self.named, readiness=report, drift=drift)
        self.store.set_shown(channel_id, app.name, period, self.owner, languages)
        return message

    def _post_refused(self, channel_id: str, app: str, period: str, code: str) -> None:
        if code == "not_in_channel":
            self.store.set_hint(channel_id, app, INVITE_HINT)
            log.warning("digest %s (app %s): the bot is not in the channel; retrying each tick until invited",
                        channel_id, app)
        elif code in ("channel_not_found", "is_archived"):
            self.store.disable(channel_id, app, f"Slack says {code}", self.clock().timestamp())
            log.warning("digest %s (app %s) disabled: Slack says %s", channel_id, app, code)
        else:
            log.error("digest %s (app %s) %s: Slack refused the post: %s", channel_id, app, period, code)


def _readiness(app: DigestApp) -> ReadinessReport | None:
    """The app's readiness report for the digest's readiness line (cached), or None when it cannot be had."""
    try:
        return app.client.readiness()
    except DeskError:
        return None

