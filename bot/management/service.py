"""Adding and removing a chatbot language from Slack (or the CLI): permission, validation,
confirmation, exactly one write per intent, and the audit trail.

1. `request()` checks that management is on for the app and the user is an admin, then that
   the tag is one Desk supports (suggesting one for near-misses), that the change makes sense
   against the current list (already present, absent, the default, over the limit) and, for a
   removal, that the language has no live FAQ questions (Desk would refuse, -50056) — all
   before anything is sent — and stores a confirmation (single-use, 10 minutes).
2. `confirm()` checks the clicker is an admin too, reads the app's list (and a removal's FAQ
   count) from Desk afresh and refuses what no longer applies (another process, or person, may
   have made the change, or added questions, since),
   then claims the confirmation in the database (one statement: only one click, in one process,
   wins), calls Desk once (the client never repeats a write whose answer was lost; it reads the
   list again instead), records the outcome, posts it to DESK_AUDIT_CHANNEL, and returns it.
3. Recording happens after Desk may have applied the write, so it must not be lost: when the
   database fails then, the user is told the change was sent and what the list shows, the
   outcome waits in this process, and `reconcile()` (the ticker, every 30 s) records it once the
   database answers. A request still `applying` long after its click (the process died between
   Desk's answer and the record) is reconciled by any process: the list is read again and what
   it shows is recorded and posted, once across processes (`ChangeStore.settle`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from slack_sdk import WebClient
from tenacity import retry, retry_if_exception_type, stop_after_attempt, stop_after_delay, wait_exponential

from bot import metrics
from bot.config import DeskApps
from bot.database import DB_DOWN_ERRORS
from bot.desk import DeskClient, DeskError, LanguageList
from bot.desk.languages import ADVANCED_EDITION_LANGUAGE_LIMIT
from bot.desk.models import language_name
from bot.desk.writes import WriteAction, WriteOutcome, WriteStatus
from bot.management import messages
from bot.management.admins import AdminDirectory
from bot.management.approvals import ApprovalGate, ApprovalPolicy, answer_text
from bot.management.settings_form import EditableSettings, audit_detail, outcome_of
from bot.management.store import SETTINGS_ACTION, AuditEntry, ChangeRequest, ChangeStore, RequestState
from bot.slack.blocks import ConfiguredApp, Message, escape, mention

log = logging.getLogger(__name__)

NOT_RECORDED = (
    "The change reached Desk, but the bot's database did not answer, so it is not in the audit trail; "
    "the log and DESK_AUDIT_CHANNEL have it. Check DATABASE_URL."
)
CONFIRMATION_TTL = 600.0  # seconds a confirmation stays usable
# Seconds a click on a request waits for the record of its message (the post and its record race the click).
MESSAGE_RECORD_GRACE = 3.0
# A request still `applying` this long after its click was left by a process that died (or lost its
# database) after calling Desk: a write and the read after it take seconds (the client's budget).
RECONCILE_AFTER = 120.0


ManagedApp = ConfiguredApp[DeskClient]  # `bot.deps.DeskApp` is one
# (app, action, tag) -> what the change does to the declared state (mrkdwn), or None: change control's
# `drift_note`, given by the composition root (this package knows nothing of the file).
DeclaredNote = Callable[[str, str, str], str | None]


class LanguageManager:
    def __init__(
        self,
        apps: Sequence[ManagedApp],
        store: ChangeStore,
        admins: AdminDirectory,
        poster: WebClient | None = None,
        audit_channel: str | None = None,
        *,
        clock: Callable[[], float] = time.time,
        declared_note: DeclaredNote | None = None,
        approvals: ApprovalPolicy | None = None,
    ) -> None:
        self._apps = DeskApps(apps)  # `get`: a stored request may be of an app no longer configured
        self.declared_note: DeclaredNote = declared_note or (lambda app, action, tag: None)
        self.store = store
        self.admins = admins
        self._poster = poster
        self._audit_channel = audit_channel
        self._clock = clock
        self.approvals = approvals or ApprovalPolicy()
        self.gate = ApprovalGate(apps, store, self.approvals, poster, audit_channel, clock=lambda: self._clock())
        # The settings editor's write of an approved settings request (it registers itself: it is
        # built on this manager, so the manager cannot build it).
        self.approve_settings: Callable[[ManagedApp, ChangeRequest, str], Message] | None = None
        # Outcomes this process got from Desk but could not record yet (request id -> entry).
        self._unrecorded: dict[str, AuditEntry] = {}
        self._unrecorded_lock = threading.Lock()

    # --- step 1: the request ---------------------------------------------------------------------

    def request(self, app: ManagedApp, user: str, action: str, text: str, *, check_admin: bool = True) -> Message:
        """The confirmation to show, or why there is none. `text` is what the user typed."""
        if check_admin:
            refused = self.permission_problem(app, user)
            if refused is not None:
                return messages.refusal_message(refused)
        try:
            locked = self.gate.lock_problem(app)
        except DB_DOWN_ERRORS as error:
            return messages.refusal_message(_database_down_before_write(error))
        if locked is not None:
            return messages.refusal_message(locked)
        tag, problem = self.check(app, action, text)
        if problem is not None or tag is None:
            return messages.refusal_message(problem or "Nothing to change.")
        request_id = self.store.create_request(
            app=app.name, action=action, tag=tag, user=user, now=self._clock(), ttl=CONFIRMATION_TTL
        )
        notes = [self.declared_note(app.name, action, tag), self.approval_note(app)]
        return messages.confirmation_message(action, tag, app.render, request_id, int(CONFIRMATION_TTL // 60),
                                             note=" ".join(note for note in notes if note) or None)

    def approval_note(self, app: ManagedApp) -> str | None:
        if not self.gate.two_person(app.name):
            return None
        return (
            f"{_title(app)} needs two people for every change ({self.approvals.variable(app.name)}=2): Confirm "
            "sends this as a request to the audit channel, and another admin's approval writes it."
        )

    def check(self, app: ManagedApp, action: str, text: str) -> tuple[str | None, str | None]:
        """(the supported tag, None), or (None, why not) as mrkdwn: everything checked before a
        write is offered — the tag, then the change against the app's current list."""
        typed = text.strip()
        if not typed:
            return None, f"Name the language to {action}, e.g. `{action} vi`: {messages.supported_tags_text()}."
        unsupported = messages.unsupported_tag_problem(typed)
        if unsupported is not None and action != "remove":
            return None, unsupported
        try:
            current = app.client.get_languages()
        except DeskError as error:
            return None, (
                f"Couldn't read {_title(app)}'s languages to check the change: {escape(error.meaning)}. "
                f"{escape(error.hint)}"
            )
        if unsupported is not None and not current.has(typed):  # one Desk lists can go, known to the bot or not
            return None, unsupported
        problem = _change_problem(action, typed, current)
        if problem is None:
            questions = self._questions_problem(app, action, typed)
            problem = questions.text if questions is not None else None
        return (None, problem) if problem is not None else (typed, None)

    # --- step 2: the click -------------------------------------------------------------------------

    def confirm(self, request_id: str, user: str, *, check_admin: bool = True) -> Message:
        found = self._clicked(request_id, user, check_admin=check_admin,
                              unknown="This confirmation is not known (any more). Ask again with the command.")
        if not isinstance(found, tuple):
            return found
        app, request = found
        if request.state is RequestState.PENDING:
            stale = self._recheck(app, request.action, request.tag)
            if stale is not None:
                if stale.superseded:
                    self.store.decide(request_id, to=RequestState.SUPERSEDED, user=user, now=self._clock())
                return messages.refusal_message(stale.text)
        if self.gate.two_person(app.name):
            if request.state is not RequestState.PENDING:
                return messages.refusal_message(self.why_not_pending(request_id))
            if user != request.requested_by:  # a second admin approves the posted request, not this one
                return messages.refusal_message(
                    f"{_title(app)} needs two people for every change: only the person who asked can send this "
                    "request for approval; you can approve it once it is in the audit channel."
                )
            try:
                return self.gate.hold(app, request)
            except DB_DOWN_ERRORS as error:
                return messages.refusal_message(_database_down_before_write(error))
        try:
            won = self.store.decide(request_id, to=RequestState.APPLYING, user=user, now=self._clock())
        except DB_DOWN_ERRORS as error:
            return messages.refusal_message(_database_down_before_write(error))
        if not won:
            return messages.refusal_message(self.why_not_pending(request_id))
        return self._apply_claimed(app, request, user)

    def _apply_claimed(self, app: ManagedApp, request: ChangeRequest, user: str) -> Message:
        """The one write of a request this caller claimed (confirmed, or approved), recorded."""
        outcome = self._write(app, request.action, request.tag)
        entry = self._entry(app, user, outcome, requested_by=request.requested_by)
        recorded = self.record_outcome(app, request.id, entry)
        return messages.result_message(
            outcome, app.render, user, requested_by=request.requested_by, recorded=recorded
        )

    # --- a Workflow Builder step's request ("Request a language change") ---------------------------------

    def request_for_step(
        self, app: ManagedApp, action: str, text: str, requested_by: str, *, execution: str,
        reason: str | None = None, channel: str | None = None,
    ) -> StepAsk:
        """Post a step's change request for the app's admins to decide (Approve / Reject in the audit
        channel, or `channel`); the step stays running until it ends (`ApprovalGate.finish_step`).
        One request per app waits at a time, whatever the app's approvals (two at once could conflict)."""
        if action not in ("add", "remove"):
            return StepAsk.refused(f"The action must be add or remove, not {escape(action[:20]) or 'nothing'}.")
        admins = self.admins.admins(app.name)
        if not admins.enabled:
            return StepAsk.refused(
                f"Changing languages is off for {_title(app)}: set `{admins.variable}` to the admins who decide.")
        if not (channel or self._audit_channel):
            return StepAsk.refused(
                "There is no channel to ask the admins in: give the step a channel, or set DESK_AUDIT_CHANNEL.")
        try:
            locked = self.gate.lock_problem(app, workflow=True)
            if locked is not None:
                return StepAsk.refused(locked)
            tag, problem = self.check(app, action, text)
            if problem is not None or tag is None:
                return StepAsk.refused(problem or "Nothing to change.")
            request_id = self.store.create_request(
                app=app.name, action=action, tag=tag, user=requested_by, now=self._clock(), ttl=CONFIRMATION_TTL,
                step_execution=execution, reason=reason, channel=channel,
            )
            request = self.store.get_request(request_id)
            if request is None:
                return StepAsk.refused("The request could not be stored.")
            held = self.gate.hold(app, request)
            now_held = self.store.get_request(request_id)
        except DB_DOWN_ERRORS as error:
            _database_down_before_write(error)  # logged once, without the URL
            return StepAsk.refused(
                "The bot's database did not answer, so nothing was asked and nothing will be written. Run the "
                "workflow again in a minute; if it keeps happening, check DATABASE_URL.")
        if now_held is not None and now_held.approval_ts:  # posted (it may even have been decided since)
            return StepAsk(posted=True)
        if now_held is not None and now_held.step_completed_at is not None:
            return StepAsk(posted=False)  # it ended unposted, and its end failed the step (`finish_step`)
        return StepAsk.refused(answer_text(held))

    # --- two-person approval (bot/management/approvals.py) ----------------------------------------------

    def approve(self, request_id: str, user: str) -> Message:
        """A second admin's Approve on a request waiting in the audit channel: permission, not the
        requester, still waiting; then the list read again (a request that no longer applies writes
        nothing), the claim (one click in one process wins) and the one write."""
        found = self._clicked(request_id, user)
        if not isinstance(found, tuple):
            return found
        app, request = found
        problem = self.gate.admit(app, request, user)
        if problem is not None:
            return messages.refusal_message(problem)
        if request.action == SETTINGS_ACTION:
            if self.approve_settings is None:
                return messages.refusal_message("Settings changes cannot be approved by this process.")
            return self.approve_settings(app, request, user)
        stale = self._recheck(app, request.action, request.tag)
        if stale is not None:
            if stale.superseded:
                self.gate.end(app, request, RequestState.SUPERSEDED, user,
                              detail="the list, or the language's FAQ questions, changed since it was asked")
            return messages.refusal_message(stale.text)
        try:
            won = self.store.decide(request_id, to=RequestState.APPLYING, user=user, now=self._clock(),
                                    from_state=RequestState.AWAITING)
        except DB_DOWN_ERRORS as error:
            return messages.refusal_message(_database_down_before_write(error))
        if not won:
            return messages.refusal_message(self.why_not_pending(request_id))
        result = self._apply_claimed(app, request, user)
        settled = self.store.get_request(request_id)
        self.gate.approved(app, request, user, settled.outcome if settled and settled.outcome else "unknown")
        return result

    def reject(self, request_id: str, user: str) -> Message:
        """An admin's Reject: nothing is written; audited with both people. The requester's own
        Reject is a cancellation."""
        found = self._clicked(request_id, user)
        if not isinstance(found, tuple):
            return found
        app, request = found
        if request.state is not RequestState.AWAITING:
            return messages.refusal_message(self.gate.why_ended(request))
        to = RequestState.CANCELLED if user == request.requested_by else RequestState.REJECTED
        if not self.gate.end(app, request, to, user):
            return messages.refusal_message(self.why_not_pending(request_id))
        done = "Cancelled" if to is RequestState.CANCELLED else "Rejected"
        return messages.notice_message(f"{done}: nothing was written ({self.gate.what(app, request)}).")

    def _clicked(
        self, request_id: str, user: str, *, check_admin: bool = True,
        unknown: str = "This request is not known (any more).",
    ) -> tuple[ManagedApp, ChangeRequest] | Message:
        """The request a button names and its app, once the clicker is known to be an admin of it;
        else the refusal to show."""
        try:
            request = self._recorded(request_id)
        except DB_DOWN_ERRORS as error:
            return messages.refusal_message(_database_down_before_write(error))
        app = self._apps.get(request.app) if request is not None else None
        if request is None or app is None:
            return messages.refusal_message(unknown)
        refused = self.permission_problem(app, user) if check_admin else None
        if refused is not None:
            return messages.refusal_message(refused)
        return app, request

    def _recorded(self, request_id: str) -> ChangeRequest | None:
        """The request, once the message that asks for it is recorded: a click can arrive between
        Slack's answer to the post and the record of where it went (the buttons are live as soon as
        the message is), so a waiting request with no message yet is read again for a few seconds
        before it counts as posted while the database failed (`approvals.WITHDRAWN`)."""
        request = self.store.get_request(request_id)
        deadline = time.monotonic() + MESSAGE_RECORD_GRACE
        while (request is not None and request.state is RequestState.AWAITING and not request.approval_ts
               and time.monotonic() < deadline):
            time.sleep(0.05)
            request = self.store.get_request(request_id)
        return request

    def _recheck(self, app: ManagedApp, action: str, tag: str) -> _Stale | None:
        """Why the change no longer applies to the list as Desk has it now, or None. A write is
        rare and the read is under the same limit, so the list is read again rather than trusted
        from a cache another process may not have invalidated."""
        failure: DeskError | None
        try:
            current = app.client.get_languages(max_age=0)  # read now, not a recent refresh
            failure = current.error if current.stale else None
        except DeskError as error:
            failure = error
        if failure is not None:
            return _Stale(
                f"Couldn't read {_title(app)}'s languages to check the change again before sending it: "
                f"{escape(failure.meaning)}. Nothing was sent to Desk; this confirmation still works until it expires.",
                superseded=False,
            )
        problem = _change_problem(action, tag, current)
        if problem is not None:
            changed = f"The list changed since this was asked: {problem} Nothing was sent to Desk."
            return _Stale(changed, superseded=True)
        return self._questions_problem(app, action, tag, again=True)

    def _questions_problem(self, app: ManagedApp, action: str, tag: str, *, again: bool = False) -> _Stale | None:
        """Why a language cannot be removed for its FAQ questions, read from Desk now (live ones
        are still there, or they could not be counted), or None. Desk refuses to delete a
        language that has questions (-50056, docs/desk-api.md §8), so that is said up front."""
        if action != "remove":
            return None
        name = _named(tag)
        try:
            count = app.client.faq_count(tag)
        except DeskError as error:
            when = "again before sending it" if again else "before offering to remove it"
            usable = " Nothing was sent to Desk; this confirmation still works until it expires." if again else ""
            return _Stale(
                f"Couldn't read {name}'s FAQ questions to check {when}: {escape(error.meaning)}. "
                f"{escape(error.hint)}{usable}",
                superseded=False,
            )
        if count.standard == 0:
            return None
        questions = f"{count.standard} live FAQ question{'' if count.standard == 1 else 's'}"
        sent = " Nothing was sent to Desk." if again else ""
        return _Stale(
            f"{name} still has {questions}, and Desk does not delete a language that has questions (-50056). "
            f"Remove or disable its FAQ questions in the Tencent console's knowledge base (FAQ) first, then ask again."
            f"{sent}",
            superseded=True,
        )

    def cancel(self, request_id: str, user: str) -> Message:
        request = self.store.get_request(request_id)
        if request is None:
            return messages.refusal_message("This confirmation is not known (any more).")
        if user != request.requested_by and not self.admins.is_admin(request.app, user):
            app = self._apps.get(request.app)
            asked = f"<@{request.requested_by}>" if request.requested_by[:1] in ("U", "W") else "someone else"
            return messages.refusal_message(
                f"Only the person who asked ({asked}) or an admin of "
                f"{_title(app) if app is not None else escape(request.app)} can cancel this."
            )
        if request.state is RequestState.AWAITING:
            app = self._apps.get(request.app)
            if app is None or not self.gate.end(app, request, RequestState.CANCELLED, user):
                return messages.refusal_message(self.why_not_pending(request_id))
        elif not self.store.decide(request_id, to=RequestState.CANCELLED, user=user, now=self._clock()):
            return messages.refusal_message(self.why_not_pending(request_id))
        verb = messages.VERBS[request.action][0]
        return messages.notice_message(f"Cancelled: nothing was sent to Desk (not {verb}ing `{request.tag}`).")

    def history(self, app: ManagedApp) -> Message:
        return messages.history_message(self.store.history(app.name), app.render)

    # --- what every path shares ----------------------------------------------------------------------

    def permission_problem(self, app: ManagedApp, user: str) -> str | None:
        admins = self.admins.admins(app.name)
        if not admins.enabled:
            instead = " instead of `none`" if admins.off else ""
            return (
                f"Changing languages from Slack is off for {_title(app)}. To turn it on, set "
                f"`{admins.variable}` to the Slack user or user-group IDs who may do it{instead}."
            )
        if not self.admins.is_admin(app.name, user):
            return f"Only these people can change {_title(app)}'s languages: {admins.mentions()}."
        return None

    def why_not_pending(self, request_id: str) -> str:
        request = self.store.get_request(request_id)
        if request is None:
            return "This confirmation is not known (any more)."
        if request.state is RequestState.AWAITING:
            return "This change is waiting for a second admin's approval in the audit channel."
        if request.approval_ts or request.state in (RequestState.REJECTED, RequestState.EXPIRED):
            return self.gate.why_ended(request)  # it went through approval: say who ended it
        if request.state is RequestState.CANCELLED:
            return "This change was cancelled; nothing was sent to Desk."
        if request.state is RequestState.SUPERSEDED:
            return (
                "The list, or the language's FAQ questions, changed since this was asked, so nothing was sent "
                "to Desk. Ask again with the command."
            )
        if request.state in (RequestState.APPLYING, RequestState.DONE):
            decider = request.decided_by
            by = f" by {mention(decider)}" if decider and decider[:1] in "UW" else ""
            return f"This change was already confirmed{by}; it is applied at most once."
        return "This confirmation expired (they last 10 minutes). Ask again with the command."

    def _write(self, app: ManagedApp, action: str, tag: str) -> WriteOutcome:
        if action == "add":
            return app.client.add_language(tag)
        return app.client.remove_language(tag)

    def _entry(
        self, app: ManagedApp, who: str, outcome: WriteOutcome, *, requested_by: str | None, detail: str | None = None
    ) -> AuditEntry:
        if detail is None and outcome.error is not None:
            detail = f"{outcome.error.code}: {outcome.error.meaning}"
        return AuditEntry(
            at=self._clock(),
            who=who,
            app=app.name,
            sdkappid=app.client.sdkappid,
            action=outcome.action.value,
            tag=outcome.tag,
            result=outcome.status.value,
            detail=detail[:300] if detail else None,
            requested_by=requested_by,
        )

    def record_outcome(self, app: ManagedApp, request_id: str, entry: AuditEntry) -> bool:
        """Record a request's outcome, retrying briefly; if the database still fails, keep it for
        `reconcile()`. True when it is recorded (by us, or already by another process)."""
        try:
            settled = _retrying_briefly(self.store.settle, request_id, entry)
        except DB_DOWN_ERRORS as error:
            with self._unrecorded_lock:
                self._unrecorded[request_id] = entry
            metrics.language_change(app.name, entry.action, entry.result)
            log.warning(
                "language change %s %s in %s: Desk answered %s, but it could not be recorded (%s); "
                "kept to record on the next reconcile", entry.action, entry.tag, app.name, entry.result,
                type(error).__name__,
            )
            return False
        if settled:
            self._announce(app, entry)
        return True

    def _announce(self, app: ManagedApp, entry: AuditEntry) -> None:
        """After the one record of a write: the metric, the log line and DESK_AUDIT_CHANNEL's line."""
        metrics.language_change(app.name, entry.action, entry.result)
        log.info("language change: %s %s %s in %s: %s", entry.who, entry.action, entry.tag, app.name, entry.result)
        self.gate.post_audit_line(app, entry)

    # --- reconciling what was not recorded --------------------------------------------------------------

    def reconcile(self, now: float | None = None) -> int:
        """Expire the requests for approval whose time is up, and withdraw those posted while the
        database failed (bot/management/approvals.py); then
        record what Desk was asked to do and was not recorded: this process's outcomes kept
        while the database was down, then any process's request left `applying` for longer than
        RECONCILE_AFTER (the list read again says applied or not seen). How many were recorded.
        Raises DB_DOWN_ERRORS when the database is still down (the ticker logs and retries)."""
        now = self._clock() if now is None else now
        recorded = self.gate.expire_due() + self.gate.withdraw_unposted()
        with self._unrecorded_lock:
            kept = list(self._unrecorded.items())
        for request_id, entry in kept:
            settled = self.store.settle(request_id, entry)
            with self._unrecorded_lock:
                self._unrecorded.pop(request_id, None)
            app = self._apps.get(entry.app)
            if settled and app is not None:
                self._announce(app, entry)
                recorded += 1
        for request in self.store.unsettled(decided_before=now - RECONCILE_AFTER):
            app = self._apps.get(request.app)
            with self._unrecorded_lock:
                mine = request.id in self._unrecorded
            if app is None or mine:
                continue
            found = self._reconciled_entry(app, request)
            if found is not None and self.store.settle(request.id, found):
                self._announce(app, found)
                recorded += 1
        self.gate.finish_steps()  # the steps of requests that ended above, or whose completion failed
        return recorded

    def _reconciled_entry(self, app: ManagedApp, request: ChangeRequest) -> AuditEntry | None:
        """The outcome of a request whose writer died, as the list shows it now; None if it cannot be read."""
        if request.action == SETTINGS_ACTION:
            return self._reconciled_settings(app, request)
        try:
            current = app.client.get_languages(max_age=0)  # read now, not a recent refresh
        except DeskError:
            return None
        if current.stale:
            return None
        action = WriteAction(request.action)
        present = current.has(request.tag)
        status = WriteStatus.APPLIED if present == (action is WriteAction.ADD) else WriteStatus.NOT_SEEN
        outcome = WriteOutcome(action, request.tag, status, ambiguous=True, languages=current)
        shows = "shows" if status is WriteStatus.APPLIED else "does not show"
        detail = f"reconciled: the bot stopped before recording Desk's answer; the list read again {shows} the change"
        return self._entry(app, request.decided_by or request.requested_by, outcome,
                           requested_by=request.requested_by, detail=detail)

    def _reconciled_settings(self, app: ManagedApp, request: ChangeRequest) -> AuditEntry | None:
        """A settings change whose writer died: the settings read again against what was asked."""
        if not request.read_values or not request.new_values:
            return None
        read = EditableSettings.of_json_settings(request.read_values)
        wanted = EditableSettings.from_json(request.new_values)
        try:
            now = EditableSettings.of(app.client.robot_settings(request.tag))
        except DeskError:
            return None
        result = outcome_of(read, wanted, now)
        detail = f"reconciled: the bot stopped before recording Desk's answer; the settings read again: {result}; " \
                 f"{audit_detail(read, wanted)}"
        return AuditEntry(
            at=self._clock(), who=request.decided_by or request.requested_by, app=app.name,
            sdkappid=app.client.sdkappid, action=SETTINGS_ACTION, tag=request.tag, result=result,
            detail=detail[:300], requested_by=request.requested_by,
        )

    # --- the command line ------------------------------------------------------------------------------

    def cli_approval_problem(self, app: ManagedApp, approved_by: str | None) -> str | None:
        """Why the command line may not write to `app` (mrkdwn), or None. Under two-person approval
        it names the second admin (--approved-by, audited), and waits its turn behind a request
        for approval in Slack (the app's lock)."""
        if not self.gate.two_person(app.name):
            return None
        variable = self.approvals.variable(app.name)
        if approved_by is None:
            return (
                f"{_title(app)} needs two people for every change ({variable}=2): name the second admin who "
                "approved it with --approved-by and their Slack user ID (U…)."
            )
        if not self.admins.is_admin(app.name, approved_by):
            return (
                f"--approved-by {escape(approved_by[:30])} is not an admin of {_title(app)} "
                f"({self.admins.admins(app.name).variable}): name a second admin's Slack user ID."
            )
        return self.gate.lock_problem(app)

    def apply_from_cli(
        self, app: ManagedApp, who: str, action: str, tag: str, *, approved_by: str | None = None
    ) -> CliChange:
        """The CLI's path: already validated and confirmed on the terminal; recorded like a click.
        The write is made before the record, so a database that fails then does not lose it: the
        whole audit entry goes to the log (ERROR) and to DESK_AUDIT_CHANNEL, and the caller is
        told it is not in the database (a process about to exit has no reconciler to keep it for)."""
        outcome = self._write(app, action, tag)
        entry = self._entry(app, who, outcome, requested_by=None)
        if approved_by is not None:
            entry = replace(entry, detail=approved_note(approved_by, entry.detail))

        def record(_: str, item: AuditEntry) -> bool:
            self.store.record(item)
            return True

        try:
            _retrying_briefly(record, "", entry)
        except DB_DOWN_ERRORS as error:
            log.error(
                "language change NOT RECORDED in the database (%s): %s %s %s in %s (SDKAppID %s) at %s: %s",
                type(error).__name__, entry.who, entry.action, entry.tag, app.name, entry.sdkappid, entry.at,
                entry.result,
            )
            self._announce(app, entry)
            return CliChange(outcome, recorded=False)
        self._announce(app, entry)
        return CliChange(outcome, recorded=True)


@dataclass(frozen=True)
class StepAsk:
    """What became of a workflow step's change request."""

    posted: bool  # waiting for the admins: its end completes the step
    fail_with: str | None = None  # mrkdwn: why it was not asked; the listener fails the step with it

    @classmethod
    def refused(cls, why: str) -> StepAsk:
        return cls(posted=False, fail_with=why)


@dataclass(frozen=True)
class CliChange:
    """A command line write: Desk's outcome, and whether its audit entry is in the database."""

    outcome: WriteOutcome
    recorded: bool


@dataclass(frozen=True)
class _Stale:
    text: str  # mrkdwn for the person who asked or clicked
    superseded: bool  # the change no longer applies (spent); False: could not check (still usable)


def approved_note(approved_by: str, detail: str | None) -> str:
    """An audit detail that names the second admin of a command line write (--approved-by)."""
    return (f"approved by {approved_by}" + (f"; {detail}" if detail else ""))[:300]


def _retrying_briefly(settle: Callable[[str, AuditEntry], bool], request_id: str, entry: AuditEntry) -> bool:
    """A few tries within about 3 s: a database that blinks is waited for, one that is down is not
    (the outcome is then kept for reconcile(), and the user is answered)."""
    retrying = retry(
        retry=retry_if_exception_type(DB_DOWN_ERRORS),
        stop=stop_after_attempt(3) | stop_after_delay(3.0),
        wait=wait_exponential(multiplier=0.2, max=1.0),
        reraise=True,
    )
    return retrying(settle)(request_id, entry)


def _database_down_before_write(error: BaseException) -> str:
    log.warning("a language change could not be read or claimed: the database is down (%s)", type(error).__name__)
    return (
        "The bot's database did not answer, so nothing was sent to Desk. Try the button again in a minute; "
        "if it keeps happening, check DATABASE_URL."
    )


def _title(app: ManagedApp) -> str:
    return escape(app.render.title)


def _named(tag: str) -> str:
    return f"{language_name(tag)} (`{tag}`)"


def _change_problem(action: str, tag: str, current: LanguageList) -> str | None:
    """Why `action tag` makes no sense against the current list, or None."""
    name = _named(tag)
    present = any(lang.tag == tag for lang in current.languages)
    if action == "add":
        if present:
            return f"{name} is already one of the chatbot's languages; nothing to add."
        if len(current.languages) >= ADVANCED_EDITION_LANGUAGE_LIMIT:
            return (
                f"The app has {len(current.languages)} languages, and Desk allows {ADVANCED_EDITION_LANGUAGE_LIMIT} "
                "(the default counted): remove one first."
            )
        return None
    if not present:
        return f"{name} is not one of the chatbot's languages; nothing to remove."
    if current.default is not None and current.default.tag == tag:
        return (
            f"{name} is the default language, which Desk does not let anyone delete. Make another language "
            "the default in the Tencent console first (Desk has no API for that)."
        )
    return None
