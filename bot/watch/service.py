"""The watch service: `/desk-languages [APP] watch`, polling each app once per interval for the
whole deployment, and posting each alert exactly once per (channel, app, change).

1. `tick(now)`: for each app, the process that wins the app's interval slot (`now // interval`,
   one conditional insert in `watch_polls`) polls it with `get_languages(max_age=interval/2)`: a
   list fetched in the last half interval (shared through the cache) costs no Desk call, an older
   cached one is not taken (it was compared when it was fetched). Every other process moves on.
2. `observe(list)`: the poller compares the list with the last *good* list seen (`watch_state`).
   A stale or failed read never makes a change; a change that flipped back before anything read
   it is never seen; a copy older than the last list seen is ignored. A difference becomes an
   event `(app, change_id)` with its alert text, where `change_id` = fingerprint(before) +
   fingerprint(after) + when the stored before list was fetched, in ms (so A→B, B→A, A→B are three
   changes, however fast they come: the slot the before list was first seen in, used before, made
   A→B, B→A, A→B inside one poll slot one change, and its second alert a duplicate). The new list
   and its event are stored in one transaction, only if the stored list
   is still the one compared with (compare and set; else read again and compare again), so a
   change is recorded once however many processes see the new list at once.
   Any other fetch from Desk (a user's refresh, a digest, a change through the bot) hands its
   list to `notice()`, the Desk client's observer: compared the same way and delivered at once,
   on this service's own worker thread, never the caller's.
3. Desk failing (or answering only a stale list) for OUTAGE_POLLS polls in a row makes one
   outage event; the next good poll one recovery event.
4. Every process then delivers recent events to every channel that watched the app when the
   event was made: each (channel, app, change_id) is posted exactly once by `post_once`, the
   digests' poster, with metadata {event_type: desk_languages_watch, payload: {app, change}}:
   claimed, a stale claim taken over only after the channel's history shows the alert is not
   there, a definite refusal released (the next tick retries), an unknown outcome kept like a
   crash. `not_in_channel` / `channel_not_found` / `is_archived` stop the channel's watch.
5. Posts to one channel within a tick are spaced by POST_SPACING seconds (Slack's ~1 message/s
   per channel); a 429 waits for its Retry-After (the posting client's only retry).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, TimeoutError
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import partial
from typing import Any, Protocol

from slack_sdk import WebClient

from bot import metrics
from bot.config import DeskApps
from bot.database import DB_DOWN_ERRORS, ClaimState
from bot.desk.changes import Changes, diff
from bot.desk.errors import DeskError
from bot.desk.models import LanguageList
from bot.slack.blocks import ConfiguredApp, Message
from bot.slack.posting import Outcome, Posting, post_once, posting_client, process_owner
from bot.watch import messages
from bot.watch.store import AppState, Event, Watch, WatchStore

log = logging.getLogger(__name__)

EVENT_TYPE = "desk_languages_watch"
OUTAGE_POLLS = 3  # failed polls in a row that make an outage alert
EVENT_WINDOW = 6 * 3600.0  # seconds an event is still delivered (a channel whose post keeps failing)
DEFAULT_LEASE = 600.0
POST_SPACING = 1.0  # seconds between two posts to one channel (Slack allows about one a second)
OFF_WORDS = ("off", "stop", "unsubscribe", "cancel")
GONE = ("not_in_channel", "channel_not_found", "is_archived")
ADVANCE_TRIES = 5  # compare-and-set rounds against other processes storing lists at the same moment
KEEP_EVENTS = 7 * 86400.0  # seconds events and alert records are kept (delivery gives up after EVENT_WINDOW)
KEEP_POLLS = 86400.0  # seconds poll slots are kept (one matters only during its interval)
PRUNE_EVERY = 3600.0
NOTICE_SETTLE = 0.5  # seconds a noticed list waits before it is compared (see `_noticed`)

WhoChanged = Callable[[str, str, str, float], str | None]  # (app, "add"|"remove", tag, since) -> who
# (app, before, after) -> the line saying a change made the app drift from its declared state or
# brought it back in sync (change control's `drift_alert_line`), or None: no difference in that.
DriftOfChange = Callable[[str, LanguageList, LanguageList], str | None]


class LanguageSource(Protocol):
    def get_languages(self, refresh: bool = False, max_age: float | None = None) -> LanguageList: ...


WatchApp = ConfiguredApp[LanguageSource]  # `bot.deps.DeskApp` is one


class Poll(StrEnum):
    BUSY = "busy"  # another process polls this slot
    FIRST = "first"  # the first list seen: nothing to compare
    UNCHANGED = "unchanged"
    CHANGED = "changed"
    FAILED = "failed"  # Desk failed or only a stale list was known
    OUTAGE = "outage"  # the failure that made the outage alert
    OLDER = "older"  # a cached list older than the last seen: ignored


@dataclass(frozen=True)
class AlertResult:
    channel_id: str
    app: str
    change_id: str
    outcome: Outcome
    error: str | None = None


@dataclass
class WatchReport:
    polls: dict[str, Poll] = field(default_factory=dict)
    alerts: list[AlertResult] = field(default_factory=list)

    @property
    def failed(self) -> list[AlertResult]:
        return [a for a in self.alerts if a.outcome in (Outcome.FAILED, Outcome.SKIPPED)]

    def summary(self) -> str:
        polls = ", ".join(f"{app}: {poll}" for app, poll in self.polls.items()) or "no app"
        posted = [a for a in self.alerts if a.outcome is not Outcome.DONE]
        alerts = "; ".join(f"{a.channel_id} {a.app} {a.change_id}: {a.outcome}" + (f" ({a.error})" if a.error else "")
                           for a in posted)
        return f"polls: {polls}" + (f"; alerts: {alerts}" if alerts else "")


def fingerprint(listed: LanguageList) -> str:
    """A short, stable id of what a list says (tags and default, in order)."""
    return hashlib.sha256(json.dumps(listed.fingerprint).encode()).hexdigest()[:12]


class WatchService:
    def __init__(
        self,
        store: WatchStore,
        apps: Sequence[WatchApp],
        slack: WebClient,
        *,
        interval: float,
        who_changed: WhoChanged | None = None,
        drift_of_change: DriftOfChange | None = None,
        timer: Callable[[], float] = time.time,
        lease: float = DEFAULT_LEASE,
        owner: str | None = None,
        spacing: float = POST_SPACING,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.apps = DeskApps(apps)
        self.named = self.apps.several
        self.slack = slack  # reads (history) with every retry the caller configured
        self.poster = posting_client(slack)
        self.interval = interval
        self.who_changed = who_changed
        self.drift_of_change = drift_of_change
        self.timer = timer
        self.lease = lease
        self.owner = owner or process_owner()
        self.spacing = spacing
        self.sleep = sleep
        self._last_post: dict[str, float] = {}  # channel -> monotonic time of our last post there
        self._notice_lock = threading.Lock()
        self._pending: dict[str, LanguageList] = {}  # app -> the newest list noticed, not compared yet
        self._noticer: ThreadPoolExecutor | None = None
        self._notice_failing = False
        self._pruned_at = 0.0

    def app(self, name: str | None = None) -> WatchApp:
        """The configured app `name` (the default app for None); `UnknownApp` for any other name."""
        return self.apps.app(name)

    # --- the slash command ------------------------------------------------------------------------

    def handle_command(self, channel_id: str, app: str, args: str, *, user_id: str | None = None) -> Message:
        """`/desk-languages [APP] watch [off]` for `channel_id`."""
        target = self.app(app)
        shown = target.name if self.named else None
        words = [word.casefold() for word in args.split()]
        existing = self.store.get_watch(channel_id, target.name)
        if not words or words == ["on"]:
            if existing is not None and existing.enabled:
                return messages.status_message(target.render, shown, existing.created_at, existing.created_by, None)
            self.store.put_watch(channel_id, target.name, user_id, self.timer())
            log.info("watch: %s now watches the app %s", channel_id, target.name)
            return messages.watching_message(target.render, shown)
        if len(words) == 1 and words[0] in OFF_WORDS:
            return messages.stopped_message(target.render, self.store.delete_watch(channel_id, target.name))
        return messages.usage_message(shown)

    def watching(self, app: str) -> list[Watch]:
        """The channels watching the configured app `app`, oldest first (for the Home tab)."""
        return self.store.watches(self.app(app).name)

    # --- ticks ----------------------------------------------------------------------------------

    def tick(self, now: float | None = None) -> WatchReport:
        """Poll every app whose slot nobody has polled yet, then deliver what is pending."""
        now = self.timer() if now is None else now
        report = WatchReport()
        for app in self.apps:
            report.polls[app.name] = self.poll(app, now)
        report.alerts = self.deliver(now)
        if now - self._pruned_at >= PRUNE_EVERY:  # deletes are idempotent: no claim needed
            self._pruned_at = now
            self.store.prune(events_before=now - KEEP_EVENTS, polls_before=now - KEEP_POLLS)
        return report

    def poll(self, app: WatchApp, now: float) -> Poll:
        """Read the app's list if this process wins the slot, and compare it (`observe`)."""
        slot = int(now // self.interval)
        if not self.store.claim_poll(app.name, slot, self.owner, now):
            return Poll.BUSY
        error: DeskError | None
        try:
            # A cached list older than half an interval was already compared when it was fetched
            # (`notice`): only a list fetched now can show something new.
            listed = app.client.get_languages(max_age=self.interval / 2)
            error = listed.error if listed.stale else None
        except DeskError as failure:
            error = failure
        if error is not None:
            return self._failed(app, self.store.get_state(app.name), error, now)
        return self.observe(app, listed, now)[0]

    def observe(self, app: WatchApp, listed: LanguageList, now: float) -> tuple[Poll, bool]:
        """Compare a good list just read from Desk (by a poll, or any other fetch: `notice`) with the
        last one seen, record the change if any, and end an open outage. Whether anything is now
        to deliver comes second. Every process may do this at once: the new list replaces the last
        only if nobody replaced it meanwhile, else it is compared again with what they stored."""
        slot = int(now // self.interval)
        state = self.store.get_state(app.name)
        recovered = state.outage_id is not None and state.failing_since is not None
        if recovered:
            assert state.failing_since is not None
            alert = messages.recovery_alert(app.render, state.failing_since, now)
            self.store.add_event(app.name, f"recovered-{state.outage_id}", "recovery", alert, now)
            log.info("watch: Desk is reachable again for the app %s", app.name)
        if state.failures or state.outage_id is not None:
            self.store.put_failures(AppState(app.name), now)
        for _ in range(ADVANCE_TRIES):
            previous = LanguageList.from_json(state.list_json) if state.list_json else None
            event: tuple[str, str, dict[str, object]] | None = None
            outcome, since = Poll.UNCHANGED, state.list_since if state.list_since is not None else slot
            if previous is None:
                outcome = Poll.FIRST
            elif listed.fetched_at < previous.fetched_at:  # an older copy from some cache: no news
                return Poll.OLDER, recovered
            elif listed.fingerprint != previous.fingerprint:
                # The stored list every process compares with (compare and set below), so they agree.
                change_id = f"{fingerprint(previous)}-{fingerprint(listed)}-{round(previous.fetched_at * 1000)}"
                changes = diff(previous, listed)
                drift = self.drift_of_change(app.name, previous, listed) if self.drift_of_change else None
                alert = messages.change_alert(app.render, changes, now, self._who(app.name, changes, previous), drift)
                event, outcome, since = (change_id, "change", alert), Poll.CHANGED, slot
            if self.store.advance_list(app.name, state, listed.to_json(), since, now, event):
                if event is not None:
                    log.info("watch: the languages of the app %s changed (%s)", app.name, event[0])
                return outcome, recovered or outcome is Poll.CHANGED
            state = self.store.get_state(app.name)  # another process stored a list meanwhile
        log.warning("watch: the app %s's list kept changing under this process; the next poll compares it",
                    app.name)
        return Poll.BUSY, recovered

    # --- other fetches ----------------------------------------------------------------------------

    def notice(self, app_name: str, listed: LanguageList) -> None:
        """A list another fetch just got from Desk (a user's refresh, a digest, a change through the
        bot; wired by the composition root as the Desk client's observer). Compared and delivered on
        this service's own thread, so the caller (an ack, a reply) never waits and never sees an error
        from here; lists arriving meanwhile are folded into the newest one."""
        if app_name not in self.apps:
            return
        with self._notice_lock:
            pending = self._pending.get(app_name)
            if pending is not None and pending.fetched_at >= listed.fetched_at:
                return
            self._pending[app_name] = listed
            if pending is not None:
                return  # a job for this app is queued already; it takes the newest list
            if self._noticer is None:
                self._noticer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="watch-notice")
            self._noticer.submit(self._noticed, app_name)

    def _noticed(self, app_name: str) -> None:
        # A change through the bot is audited just after Desk's answer, and its list fetched before
        # that: a moment's wait lets the alert name who made it.
        time.sleep(NOTICE_SETTLE)
        with self._notice_lock:
            listed = self._pending.pop(app_name)
        try:
            now = self.timer()
            if self.observe(self.apps.app(app_name), listed, now)[1]:
                self.deliver(now)
        except DB_DOWN_ERRORS as error:  # the database is down: one line per outage, no driver text
            if not self._notice_failing:
                log.warning("watch: a list seen outside the polls could not be compared (%s); the next poll "
                            "will. Check DATABASE_URL.", type(error).__name__)
            self._notice_failing = True
        except Exception:  # a bug: keep its traceback; the next poll compares again
            log.exception("watch: a list seen outside the polls could not be compared")
            self._notice_failing = True
        else:
            self._notice_failing = False

    def settings_changed(self, app: Any, entry: Any, change_id: str) -> None:
        """A language's chatbot settings changed through the bot (bot/management/settings_editor.py):
        one event per change (keyed by its request), delivered to the channels watching the app
        exactly once, like a change of the list, on this service's own thread."""
        if app.name not in self.apps:
            return
        alert = messages.settings_alert(self.apps.app(app.name).render, entry.tag, entry.detail or "", entry.who,
                                        entry.result, entry.at)

        def record_and_deliver() -> None:
            try:
                now = self.timer()
                self.store.add_event(app.name, f"settings-{change_id}", "settings", alert, now)
                self.deliver(now)
            except DB_DOWN_ERRORS as error:
                log.warning("watch: the alert of a settings change could not be recorded (%s). Check DATABASE_URL.",
                            type(error).__name__)
            except Exception:
                log.exception("watch: the alert of a settings change could not be delivered")

        with self._notice_lock:
            if self._noticer is None:
                self._noticer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="watch-notice")
            self._noticer.submit(record_and_deliver)

    def wait_noticed(self, timeout: float = 10.0) -> bool:
        """Wait until every list noticed so far has been compared and delivered (tests, shutdown).
        Each pending list has its job queued, and the one worker runs jobs in order."""
        with self._notice_lock:
            noticer = self._noticer
        if noticer is None:
            return True
        try:
            noticer.submit(lambda: None).result(timeout)
        except TimeoutError:
            return False
        return True

    def _who(self, app: str, changes: Changes, previous: LanguageList) -> dict[str, str | None]:
        """Who made each addition and removal through the bot: the newest audit entry for that
        app and tag since the previous list was confirmed."""
        if self.who_changed is None:
            return {}
        since = previous.fetched_at - 5
        who: dict[str, str | None] = {}
        for action, languages in (("add", changes.added), ("remove", changes.removed)):
            for lang in languages:
                who[f"{action}:{lang.tag}"] = self.who_changed(app, action, lang.tag, since)
        return who

    def _failed(self, app: WatchApp, state: AppState, error: DeskError, now: float) -> Poll:
        failures = state.failures + 1
        since = state.failing_since if state.failures and state.failing_since is not None else now
        code, outage_id, outcome = str(error.code), state.outage_id, Poll.FAILED
        if failures >= OUTAGE_POLLS and outage_id is None:
            outage_id = f"outage-{int(since)}"
            alert = messages.outage_alert(app.render, since, code, error.hint)
            self.store.add_event(app.name, outage_id, "outage", alert, now)
            log.warning("watch: Desk has failed %d polls in a row for the app %s (%s)", failures, app.name, code)
            outcome = Poll.OUTAGE
        self.store.put_failures(replace(state, failures=failures, failing_since=since, error_code=code,
                                        error_hint=error.hint, outage_id=outage_id), now)
        return outcome

    # --- delivery --------------------------------------------------------------------------------

    def deliver(self, now: float) -> list[AlertResult]:
        events = [e for e in self.store.events_since(now - EVENT_WINDOW) if e.app in self.apps]
        if not events:
            return []
        watchers: dict[str, list[str]] = {}
        created: dict[tuple[str, str], float] = {}
        for watch in self.store.watches():
            watchers.setdefault(watch.app, []).append(watch.channel_id)
            created[(watch.channel_id, watch.app)] = watch.created_at
        due = [
            (channel, event) for event in events for channel in watchers.get(event.app, [])
            if created[(channel, event.app)] <= event.created_at
        ]
        settled = self.store.get_alerts([(channel, e.app, e.change_id) for channel, e in due])
        results: list[AlertResult] = []
        gone: set[tuple[str, str]] = set()
        for channel, event in due:
            record = settled.get((channel, event.app, event.change_id))
            if record is not None and record.state in (ClaimState.POSTED, ClaimState.SKIPPED):
                continue
            if (channel, event.app) in gone:
                continue
            result = self._alert(channel, event)
            if result.outcome not in (Outcome.DONE, Outcome.BUSY):
                metrics.watch_alert(result.outcome.value)
            if result.outcome is Outcome.FAILED and result.error and any(code in result.error for code in GONE):
                gone.add((channel, event.app))
            results.append(result)
        return results

    def _alert(self, channel: str, event: Event) -> AlertResult:
        app, change = event.app, event.change_id
        posting = Posting("watch alert", channel, app, change, EVENT_TYPE, {"app": app, "change": change},
                          event.created_at)
        done = post_once(
            posting, partial(self._paced, channel, event.message),
            ledger=self.store, slack=self.slack, poster=self.poster, owner=self.owner, timer=self.timer,
            lease=self.lease,
        )
        if done.attempted:
            self._last_post[channel] = time.monotonic()  # the next post to this channel waits from here
        if done.refused in GONE:
            if self.store.disable(channel, app, f"Slack says {done.refused}"):  # one process, once
                log.warning("watch: %s no longer watches the app %s: Slack says %s", channel, app, done.refused)
        elif done.refused is not None:
            log.error("watch alert %s (app %s) %s: %s", channel, app, change, done.error)
        return AlertResult(channel, app, change, done.outcome, done.error)

    def _paced(self, channel: str, message: Message) -> Message:
        """`message`, once the last post to `channel` is far enough behind (Slack: about one a second)."""
        last = self._last_post.get(channel)
        if last is not None:
            wait = self.spacing - (time.monotonic() - last)
            if wait > 0:
                self.sleep(wait)
        return message
