"""Two-person approval (DESK_APPROVALS / DESK_<APP>_APPROVALS = 2): the request a second admin
approves, the app's lock, and every way a request ends without a write.

The requester's Confirm (or a settings modal's Apply) does not write: `hold()` makes the request
the app's one request waiting for approval (the database's partial unique index refuses a second,
across processes) and posts it to DESK_AUDIT_CHANNEL with Approve and Reject. Whoever wins a
transition is the one process that acts on it, so the request is posted once and each end state
updates that message once:

    pending --Confirm--> awaiting --Approve (another admin)--> applying --> done   (the write)
                                  --Reject / Cancel / expiry / no longer applies--> rejected,
                                    cancelled, expired, superseded (audited, nothing written)

The write itself stays with its owner (`LanguageManager.approve`, `SettingsEditor.apply_approved`):
this module checks who may approve, holds, ends and shows requests; it never calls Desk.

A Workflow Builder step's request ("Request a language change") waits the same way on every app
(one admin's decision suffices where the app needs one), and each end completes its step once
(`finish_step`), including a request that could not be posted (the step fails).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import metrics
from bot.config import DeskApps
from bot.database import DB_DOWN_ERRORS
from bot.desk import DeskClient
from bot.management import messages
from bot.management.settings_form import EditableSettings, audit_detail
from bot.management.store import SETTINGS_ACTION, AppLocked, AuditEntry, ChangeRequest, ChangeStore, RequestState
from bot.slack import steps
from bot.slack.blocks import ConfiguredApp, Message, escape, mention, slack_date
from bot.terminal import plain_text

log = logging.getLogger(__name__)

GatedApp = ConfiguredApp[DeskClient]

# Slack's answers to a step's completion that mean it has ended, or never will, on Slack's side
# (it timed out, or was completed or failed already): recorded as completed, never tried again.
STEP_ALREADY_ENDED = frozenset({"execution_not_in_running_state", "function_execution_not_found"})
# A request waiting for approval this long with no message recorded was posted while the database
# failed (its step, if any, was failed then): the reconciler withdraws it, freeing its app's lock.
UNPOSTED_AFTER = 120.0
WITHDRAWN = (
    "This request was withdrawn: the bot's database did not answer when it was posted, so it cannot be "
    "approved; nothing was written. Ask again."
)


@dataclass(frozen=True)
class ApprovalPolicy:
    """How many people each app's writes need, and how long a request waits for the second."""

    required: Mapping[str, int] = field(default_factory=dict)  # app -> 1 or 2 (absent: 1)
    variables: Mapping[str, str] = field(default_factory=dict)  # app -> the variable that said so
    ttl: float = 86400.0  # DESK_APPROVAL_TTL

    def two_person(self, app: str) -> bool:
        return self.required.get(app, 1) >= 2

    def variable(self, app: str) -> str:
        return self.variables.get(app, "DESK_APPROVALS")


class ApprovalGate:
    def __init__(
        self,
        apps: Sequence[GatedApp],
        store: ChangeStore,
        policy: ApprovalPolicy,
        poster: WebClient | None,
        channel: str | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._apps = DeskApps(apps)
        self.store = store
        self.policy = policy
        self._poster = poster
        self._channel = channel
        self._clock = clock

    def two_person(self, app: str) -> bool:
        return self.policy.two_person(app)

    # --- asking ---------------------------------------------------------------------------------------

    def lock_problem(self, app: GatedApp, *, workflow: bool = False) -> str | None:
        """Why no new write request can be made on `app` now (another waits for approval), or None.
        An expired holder is expired first (it frees the lock). Under two-person approval every
        change waits its turn; on other apps only a workflow's request does (`workflow`): the only
        requests that wait there are workflows', and a slash command's change needs no approval."""
        if not (workflow or self.two_person(app.name)):
            return None
        holder = self.store.awaiting(app.name)
        if holder is not None and holder.expires_at <= self._clock():
            self.expire(holder)
            holder = self.store.awaiting(app.name)
        return self._held_text(app, holder) if holder is not None else None

    def hold(self, app: GatedApp, request: ChangeRequest) -> Message:
        """Confirm under two-person approval: the request waits for a second admin, posted to the
        audit channel; what the requester sees (waiting, with Cancel; or why not)."""
        now = self._clock()
        problem = self.lock_problem(app)
        if problem is not None:
            return messages.refusal_message(problem)
        try:
            held = self.store.hold(request.id, now=now, ttl=self.policy.ttl)
        except AppLocked as locked:  # another process's request took the lock since
            return messages.refusal_message(self._held_text(app, locked.holder))
        if not held:
            return messages.refusal_message(
                "This confirmation was already used, cancelled or has expired. Ask again with the command."
            )
        waiting = self.store.get_request(request.id) or request
        posted = self._post(app, waiting)
        if posted is None:
            where = "the workflow step's channel" if waiting.step_execution else "DESK_AUDIT_CHANNEL"
            entry = self._ended_entry(app, waiting, who=waiting.requested_by, result="cancelled",
                                      detail=f"the request could not be posted to {where}")
            self.store.end(request.id, to=RequestState.CANCELLED, entry=entry, now=self._clock())
            self.finish_step(request.id)  # a workflow's request: its step fails now, once, recorded
            needs = "This app needs a second admin's approval, and the" if self.two_person(app.name) else "The"
            return messages.refusal_message(
                f"{needs} request could not be posted for the admins (is the bot in the channel?), so nothing was "
                "sent to Desk. Try again in a minute."
            )
        log.info("approval requested: %s asks to %s %s in %s", waiting.requested_by, waiting.action, waiting.tag,
                 app.name)
        metrics.language_change(app.name, waiting.action, "awaiting")
        return messages.awaiting_message(request.id, self.what(app, waiting), posted, waiting.expires_at)

    # --- deciding --------------------------------------------------------------------------------------

    def admit(self, app: GatedApp, request: ChangeRequest, user: str) -> str | None:
        """Why `user` (an admin) may not approve `request` now, or None. Expires it when its time is up."""
        if request.state is not RequestState.AWAITING:
            return self.why_ended(request)
        if not request.approval_ts:  # posted, but the database failed before it recorded where (see _post)
            return WITHDRAWN
        if user == request.requested_by and self.two_person(app.name):
            return (
                f"You asked for this change, so another admin of {escape(app.render.title)} must approve it. "
                "Nothing was written."
            )
        if request.expires_at <= self._clock():
            self.expire(request)
            return self.why_ended(self.store.get_request(request.id) or request)
        return None

    def why_ended(self, request: ChangeRequest) -> str:
        """Why a request no longer waits for approval, as mrkdwn."""
        by = mention(request.decided_by) if request.decided_by else "someone"
        return {
            RequestState.APPLYING: f"This request was already approved by {by}; it is applied at most once.",
            RequestState.DONE: f"This request was already approved by {by}; it is applied at most once.",
            RequestState.REJECTED: f"This request was rejected by {by}; nothing was written.",
            RequestState.CANCELLED: f"This request was cancelled by {by}; nothing was written.",
            RequestState.SUPERSEDED: "This request no longer applied when it was approved; nothing was written.",
            RequestState.EXPIRED: "This request expired before a second admin approved it; nothing was written. "
                                  "Ask again with the command.",
        }.get(request.state, "This request is not waiting for approval (any more).")

    def end(self, app: GatedApp, request: ChangeRequest, to: RequestState, who: str, *, detail: str | None = None,
            expired: bool = False) -> bool:
        """End a waiting request without a write, audited with both people; True for the one caller
        (across processes) that did, which announces it and updates the request's message."""
        entry = self._ended_entry(app, request, who=who, result=to.value, detail=detail)
        if not self.store.end(request.id, to=to, entry=entry, now=self._clock(), expired=expired):
            return False
        self._announce(app, entry)
        self.show(app, request, _ended_text(entry))
        self.finish_step(request.id)
        return True

    def expire(self, request: ChangeRequest) -> bool:
        app = self._apps.get(request.app)
        if app is None:
            return False
        return self.end(app, request, RequestState.EXPIRED, request.requested_by, expired=True)

    def expire_due(self) -> int:
        """Expire every request whose time is up (the ticker, every process): how many this one did."""
        return sum(self.expire(request) for request in self.store.due_to_expire(now=self._clock()))

    def withdraw_unposted(self) -> int:
        """End, as cancelled, every request posted while the database failed (no message recorded)
        UNPOSTED_AFTER ago: nobody can approve it, and it holds its app's lock. How many this one did."""
        withdrawn = 0
        for request in self.store.unposted(held_before=self._clock() - UNPOSTED_AFTER):
            app = self._apps.get(request.app)
            if app is not None and self.end(app, request, RequestState.CANCELLED, request.requested_by,
                                            detail="withdrawn: the database did not answer when it was posted"):
                withdrawn += 1
        return withdrawn

    def approved(self, app: GatedApp, request: ChangeRequest, approver: str, result: str) -> None:
        """After the write of an approved request: its message says who approved and Desk's result."""
        said = {"applied": "applied", "not-applied": "Desk refused it", "not-seen": "Desk's answer was lost and "
                "the read again does not show it", "unknown": "Desk's answer was lost; whether it applied is unknown"}
        icon = {"applied": ":white_check_mark:", "not-applied": ":x:"}.get(result, ":grey_question:")
        self.show(app, request, f"{icon} Approved by {mention(approver)} {slack_date(self._clock())}: "
                                f"{said.get(result, escape(result))}.")
        self.finish_step(request.id)

    # --- the request's message ---------------------------------------------------------------------------

    def what(self, app: GatedApp, request: ChangeRequest) -> str:
        return messages.approval_what(request.action, request.tag, app.render)

    def message(self, app: GatedApp, request: ChangeRequest, ended: str | None = None) -> Message:
        detail = _settings_detail(request) or (
            f"From a workflow. Reason: {escape(request.reason)}" if request.reason else
            "From a workflow." if request.step_execution else None
        )
        return messages.approval_request_message(
            request.id, request.requested_by, self.what(app, request), detail, request.expires_at, ended=ended,
            others_only=self.two_person(app.name),
        )

    def _post(self, app: GatedApp, request: ChangeRequest) -> str | None:
        """Post the request to the audit channel and remember where; the channel, or None."""
        channel = request.approval_channel or self._channel  # a step may name its channel
        if self._poster is None or not channel:
            return None
        message = self.message(app, request)
        try:
            response = self._poster.chat_postMessage(
                channel=channel, text=message["text"], blocks=message["blocks"], unfurl_links=False
            )
        except Exception as error:  # noqa: BLE001  answered: nothing is written without the request posted
            said = _slack_error(error)
            log.warning("a request for approval could not be posted (%s%s)", type(error).__name__,
                        f": {said}" if said else "")
            return None
        channel, ts = str(response.get("channel") or channel), str(response.get("ts") or "")
        try:
            self.store.set_approval_message(request.id, channel=channel, ts=ts)
        except DB_DOWN_ERRORS:
            # Posted with live buttons, but not recorded: its requester is told it failed, so nobody may
            # approve it (`admit`); its message says so now, and the reconciler withdraws it later.
            self._update(channel, ts, self.message(app, request, ended=f":heavy_minus_sign: {WITHDRAWN}"))
            raise
        return channel

    def show(self, app: GatedApp, request: ChangeRequest, ended: str) -> None:
        """Update the request's message in place with how it ended (no buttons any more)."""
        posted = self.store.get_request(request.id) or request
        if not posted.approval_channel or not posted.approval_ts:
            return
        self._update(posted.approval_channel, posted.approval_ts, self.message(app, posted, ended=ended))

    def _update(self, channel: str, ts: str, message: Message) -> None:
        if self._poster is None:
            return
        try:
            self._poster.chat_update(channel=channel, ts=ts, text=message["text"], blocks=message["blocks"])
        except Exception as error:  # noqa: BLE001  the end is recorded; the message is only its picture
            log.warning("the request for approval could not be updated in place (%s)", type(error).__name__)

    # --- Workflow Builder steps ("Request a language change") ---------------------------------------------

    def finish_step(self, request_id: str) -> bool:
        """Complete the step a request came from, once it has ended, once across processes (a claim
        in the database): applied / not applied / not seen / rejected; fail it when it expired, or
        when the request could not be posted. With the app's bot token (a workflow token is not
        kept). A completion Slack did not take is released for the reconciler to try again; one
        Slack says has ended already (STEP_ALREADY_ENDED) stays recorded. True when this caller
        completed it."""
        request = self.store.claim_step(request_id, now=self._clock())
        if request is None or request.step_execution is None:
            return False
        app = self._apps.get(request.app)
        what = plain_text(self.what(app, request)) if app is not None else f"{request.action} {request.tag}"
        outcome = _step_outcome(request)
        try:
            if self._poster is None:
                raise RuntimeError("no Slack client")
            if outcome in (steps.EXPIRED, UNPOSTED):
                self._poster.functions_completeError(
                    function_execution_id=request.step_execution, error=self._step_error(request, what, outcome))
            else:
                self._poster.functions_completeSuccess(
                    function_execution_id=request.step_execution,
                    outputs={"outcome": outcome, "message": _step_message(request, what, outcome)},
                )
        except Exception as error:  # noqa: BLE001  released: the reconciler completes it later
            if _slack_error(error) in STEP_ALREADY_ENDED:
                log.info("the workflow step of a change request had ended on Slack's side already (%s); recorded",
                         _slack_error(error))
                return False
            log.warning("the workflow step of a change request could not be completed (%s); retried later",
                        type(error).__name__)
            self.store.release_step(request_id)
            return False
        if outcome != UNPOSTED:  # its run was counted failed when its listener returned
            metrics.workflow_step(steps.REQUEST_CHANGE, outcome)
        return True

    def _step_error(self, request: ChangeRequest, what: str, outcome: str) -> str:
        if outcome == steps.EXPIRED:
            return (f"The request to {what} expired: no admin decided within {self.policy.ttl / 3600:g} hours. "
                    "Run the workflow again to ask again.")
        channel = request.approval_channel or self._channel
        where = f" in <#{channel}>" if channel else ""
        return (f"The request to {what} could not be posted for the admins{where}, so nothing was asked and nothing "
                "will be written. Check that the bot is in that channel (invite it), then run the workflow again.")

    def finish_steps(self) -> int:
        """The reconciler: complete every ended step request nobody completed."""
        return sum(self.finish_step(request.id) for request in self.store.steps_to_complete())

    # --- the audit -------------------------------------------------------------------------------------------

    def _ended_entry(self, app: GatedApp, request: ChangeRequest, *, who: str, result: str,
                     detail: str | None) -> AuditEntry:
        return AuditEntry(
            at=self._clock(), who=who, app=app.name, sdkappid=app.client.sdkappid, action=request.action,
            tag=request.tag, result=result, detail=detail[:300] if detail else None,
            requested_by=request.requested_by,
        )

    def _announce(self, app: GatedApp, entry: AuditEntry) -> None:
        metrics.language_change(app.name, entry.action, entry.result)
        log.info("language change request %s: %s %s in %s (requested by %s, by %s)", entry.result, entry.action,
                 entry.tag, app.name, entry.requested_by, entry.who)
        self.post_audit_line(app, entry)

    def post_audit_line(self, app: GatedApp, entry: AuditEntry) -> None:
        """The audit entry's line in DESK_AUDIT_CHANNEL, when one is set (every recorded change's)."""
        if self._poster is None or not self._channel:
            return
        line = messages.audit_line(entry, app.render)
        try:
            self._poster.chat_postMessage(channel=self._channel, text=line["text"], blocks=line["blocks"],
                                          unfurl_links=False)
        except Exception as error:  # noqa: BLE001  recorded in the database either way
            log.warning("the audit line could not be posted to DESK_AUDIT_CHANNEL (%s)", type(error).__name__)

    def _held_text(self, app: GatedApp, holder: ChangeRequest | None) -> str:
        """Why `app` takes no new request now: who holds its lock, since when, until when."""
        title = escape(app.render.title)
        if holder is None:
            return f"Another request on {title} is waiting for approval. Try again once it has ended."
        verb = messages.VERBS.get(holder.action, (escape(holder.action),))[0]
        held = (f"{mention(holder.requested_by)}'s request to {verb} `{escape(holder.tag)}` has been waiting "
                f"since {slack_date(holder.decided_at or holder.requested_at)}")
        if self.two_person(app.name):
            return (
                f"{title} needs a second admin's approval for every change, one request at a time, and {held}. "
                f"Ask again once it is approved, rejected or cancelled, or after it expires "
                f"{slack_date(holder.expires_at)}."
            )
        return (  # one approver: only workflows' requests wait, one per app so two cannot conflict
            f"{title} takes one change request from workflows at a time, and {held} for an admin's decision. "
            f"Ask again once an admin has approved or rejected it, or after it expires {slack_date(holder.expires_at)}."
        )


def answer_text(answer: Message) -> str:
    """The text of a one-section answer (a hold's "waiting", or a refusal without its emoji)."""
    return str(answer["blocks"][0]["text"]["text"]).removeprefix(":no_entry: ")


def _slack_error(error: BaseException) -> str | None:
    """The `error` of Slack's answer (e.g. not_in_channel), when Slack answered one."""
    if isinstance(error, SlackApiError):
        return str(error.response.get("error") or "") or None
    return None


def _ended_text(entry: AuditEntry) -> str:
    icons = {"rejected": ":x:", "expired": ":hourglass:", "cancelled": ":heavy_minus_sign:"}
    icon = icons.get(entry.result, ":no_entry:")
    return f"{icon} {messages.change_text(entry)}."


UNPOSTED = "unposted"  # a step's request that ended before it was posted: the step fails


def _step_outcome(request: ChangeRequest) -> str:
    if request.state is RequestState.EXPIRED:
        return steps.EXPIRED
    if request.state is RequestState.CANCELLED and not request.approval_ts:
        return UNPOSTED
    if request.state is RequestState.REJECTED:
        return "rejected"
    if request.state is RequestState.DONE:
        return {"applied": "applied", "not-applied": "not applied"}.get(request.outcome or "", "not seen")
    return "not applied"  # cancelled, or it no longer applied when approved


def _step_message(request: ChangeRequest, what: str, outcome: str) -> str:
    by = f"<@{request.decided_by}>" if request.decided_by else "an admin"
    return {
        "applied": f"Approved by {by}: done, {what}.",
        "not applied": (f"Approved by {by}, but Desk refused it: {what}." if request.state is RequestState.DONE
                        else f"Not done, it no longer applied when {by} approved it: {what}."
                        if request.state is RequestState.SUPERSEDED else f"Cancelled by {by}: {what}."),
        "not seen": f"Approved by {by}; Desk's answer was lost and the list read again does not show it yet: {what}.",
        "rejected": f"Rejected by {by}: {what}.",
    }.get(outcome, what)


def _settings_detail(request: ChangeRequest) -> str | None:
    """A settings request's old → new fields, for its approver."""
    if request.action != SETTINGS_ACTION or not request.read_values or not request.new_values:
        return None
    read = EditableSettings.of_json_settings(request.read_values)
    return escape(audit_detail(read, EditableSettings.from_json(request.new_values)))
