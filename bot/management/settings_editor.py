"""Changing one language's chatbot settings (fallback message, welcome card, transfer to an agent)
from a Slack modal or the command line: permission, the read, the review, exactly one write per
Apply, and the audit.

1. `refusal()` (before any modal, no Desk call): management is on and the user is an admin, the
   tag is one Desk supports (with a suggestion), and, when this process holds the app's list,
   that the app serves it.
2. `load()`: the app serves the tag (its list), the settings as Desk has them now, and a change
   request (bot/management/store.py, action `settings`) holding what was read.
3. `propose()`: the review. The request gets what was asked for (only its own requester's, while
   pending).
4. `apply()`: the Apply. Permission again, then the settings are read from Desk again: if any field
   differs from what the modal was filled with (the console, another admin), nothing is written and
   the difference is shown. Otherwise the request is claimed in the database (one statement: one
   Apply, in one process, wins), and the whole set of fields is sent, the changed ones replaced
   (read-modify-write, docs/desk-api.md §12.2). A lost answer is never sent again: the settings
   read again say applied, not seen or unknown. The outcome is recorded with its audit entry
   (`LanguageManager.record_outcome`: once across processes, kept for the reconciler if the
   database fails then), posted to DESK_AUDIT_CHANNEL, and handed to `on_change` (the watch
   alert).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.database import DB_DOWN_ERRORS
from bot.desk import DeskError, RobotSettings
from bot.desk.models import language_name
from bot.desk.writes import write_may_have_run
from bot.management import messages
from bot.management.approvals import answer_text
from bot.management.service import LanguageManager, ManagedApp, approved_note
from bot.management.settings_form import (
    LABELS,
    EditableSettings,
    audit_detail,
    changed_fields,
    check_values,
    onto,
    outcome_of,
    settings_from_json,
    settings_to_json,
    shown,
)
from bot.management.store import SETTINGS_ACTION, AuditEntry, ChangeRequest, RequestState
from bot.slack.blocks import Message, code_text, escape, mention, message_of, section

log = logging.getLogger(__name__)

SETTINGS_TTL = 1800.0  # seconds a settings modal stays usable after it opened
SettingsChanged = Callable[[ManagedApp, AuditEntry, str], None]  # (app, entry, request id): the watch alert


@dataclass(frozen=True)
class Loaded:
    """What the form is filled with."""

    request_id: str
    settings: RobotSettings


@dataclass(frozen=True)
class Proposal:
    """What the review shows: the request, what was read and what is asked for."""

    request: ChangeRequest
    read: RobotSettings
    wanted: EditableSettings


@dataclass(frozen=True)
class Applied:
    """An Apply's answer: mrkdwn for the person, and the write's result when one was attempted."""

    text: str
    result: str | None = None  # applied | not-applied | not-seen | unknown; None: nothing was sent


class SettingsEditor:
    def __init__(
        self, manager: LanguageManager, *, on_change: SettingsChanged | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.manager = manager
        self.store = manager.store
        self._on_change = on_change
        self._clock = clock
        manager.approve_settings = self.apply_approved  # a second admin's Approve of a settings request

    # --- before the modal ---------------------------------------------------------------------

    def refusal(self, app: ManagedApp, user: str, typed: str) -> str | None:
        """Why no modal opens, as mrkdwn (None: open it). No Desk call: this runs before the
        trigger_id (about 3 s) is spent."""
        refused = self.manager.permission_problem(app, user)
        if refused is not None:
            return refused
        tag = typed.strip()
        if not tag:
            return "Name the language whose chatbot settings to change, e.g. `settings fil`."
        unsupported = messages.unsupported_tag_problem(tag)
        if unsupported is not None:
            return unsupported
        held = app.client.peek()
        if held is not None and not held.stale and not held.has(tag):
            return _not_served(app, tag)
        return None

    def refusal_for_cli(self, app: ManagedApp, typed: str) -> str | None:
        """`refusal()` without the admin check: whoever runs the command line holds the app's secrets."""
        tag = typed.strip()
        if not tag:
            return "Name the language whose chatbot settings to change, e.g. `settings fil --fallback …`."
        return messages.unsupported_tag_problem(tag)

    def load(self, app: ManagedApp, user: str, tag: str) -> Loaded | str:
        """The settings to fill the form with and the request that holds them, or why not (mrkdwn)."""
        try:
            locked = self.manager.gate.lock_problem(app)
        except DB_DOWN_ERRORS as error:
            return _database_down(error)
        if locked is not None:
            return locked
        try:
            listed = app.client.get_languages()
            if not listed.stale and not listed.has(tag):
                return _not_served(app, tag)
            settings = app.client.robot_settings(tag)
        except DeskError as error:
            return (
                f"Couldn't read the chatbot settings of {_named(tag)} from Desk: {escape(error.meaning)}. "
                f"{escape(error.hint)}"
            )
        try:
            request_id = self.store.create_request(
                app=app.name, action=SETTINGS_ACTION, tag=tag, user=user, now=self._clock(), ttl=SETTINGS_TTL,
                read_values=settings_to_json(settings),
            )
        except DB_DOWN_ERRORS as error:
            return _database_down(error)
        return Loaded(request_id, settings)

    # --- the review ------------------------------------------------------------------------------

    def proposal(self, app: ManagedApp, change: str, user: str, *, check_admin: bool = True) -> Proposal | str:
        """The pending request `change` of `user` with what it read and asks for, or why not.
        `check_admin=False` only for the command line (whoever runs it holds the app's secrets)."""
        refused = self.manager.permission_problem(app, user) if check_admin else None
        if refused is not None:
            return refused
        request = self.store.get_request(change)
        if request is None or request.action != SETTINGS_ACTION or request.app != app.name or not request.read_values:
            return "This settings modal is not known (any more). Run the command again."
        if request.requested_by != user:
            return "This settings modal was opened by someone else. Run the command to open your own."
        if request.state is not RequestState.PENDING or request.expires_at <= self._clock():
            return self.manager.why_not_pending(change).replace("confirmation", "modal")
        read = settings_from_json(request.read_values)
        wanted = EditableSettings.from_json(request.new_values) if request.new_values else EditableSettings.of(read)
        return Proposal(request, read, wanted)

    def propose(
        self, app: ManagedApp, change: str, user: str, wanted: EditableSettings, *, check_admin: bool = True
    ) -> Proposal | str:
        """Record what the review asks for; the review to show, or why not (mrkdwn)."""
        found = self.proposal(app, change, user, check_admin=check_admin)
        if isinstance(found, str):
            return found
        problem = check_values(wanted)
        if problem is not None:
            return problem
        if not self.store.propose(change, user=user, new_values=wanted.to_json(), now=self._clock()):
            return self.manager.why_not_pending(change).replace("confirmation", "modal")
        return Proposal(found.request, found.read, wanted)

    # --- the Apply --------------------------------------------------------------------------------

    def apply(
        self, app: ManagedApp, change: str, user: str, *, check_admin: bool = True, approved_by: str | None = None
    ) -> Applied:
        """The Apply: `approved_by` only from the command line, whose caller checked it names a second
        admin (`LanguageManager.cli_approval_problem`); in Slack a second admin approves the request."""
        try:
            found = self.proposal(app, change, user, check_admin=check_admin)
        except DB_DOWN_ERRORS as error:
            return Applied(_database_down(error))
        if isinstance(found, str):
            return Applied(found)
        read, wanted, tag = EditableSettings.of(found.read), found.wanted, found.request.tag
        names = changed_fields(read, wanted)
        if not names:
            return Applied("Nothing to change: these are the settings Desk has.")
        try:
            current = app.client.robot_settings(tag)
        except DeskError as error:
            return Applied(
                f"Couldn't read the chatbot settings of {_named(tag)} again before writing: {escape(error.meaning)}. "
                f"Nothing was sent to Desk. {escape(error.hint)} Then press Apply again."
            )
        moved = changed_fields(read, EditableSettings.of(current))
        try:
            if moved:
                self.store.decide(change, to=RequestState.SUPERSEDED, user=user, now=self._clock())
                return Applied(_moved_text(tag, read, EditableSettings.of(current), moved))
            if self.manager.gate.two_person(app.name) and approved_by is None:
                if not check_admin:  # the command line names its second admin, or writes nothing
                    return Applied(self.manager.cli_approval_problem(app, None) or "")
                held = self.manager.gate.hold(app, self.store.get_request(change) or found.request)
                return Applied(answer_text(held))
            won = self.store.decide(change, to=RequestState.APPLYING, user=user, now=self._clock())
        except DB_DOWN_ERRORS as error:
            return Applied(_database_down(error))
        if not won:
            return Applied(self.manager.why_not_pending(change).replace("confirmation", "modal"))
        return self._write_claimed(app, found.request, user, current, read, wanted, names, approved_by=approved_by)

    def _write_claimed(
        self, app: ManagedApp, request: ChangeRequest, user: str, current: RobotSettings,
        read: EditableSettings, wanted: EditableSettings, names: list[str], *, approved_by: str | None = None,
    ) -> Applied:
        """The one write of a settings request this caller claimed (applied, or approved), recorded."""
        tag = request.tag
        result, detail = self._write(app, tag, current, read, wanted, names)
        if approved_by is not None:
            detail = approved_note(approved_by, detail)
        entry = AuditEntry(
            at=self._clock(), who=user, app=app.name, sdkappid=app.client.sdkappid, action=SETTINGS_ACTION, tag=tag,
            result=result, detail=detail[:300], requested_by=request.requested_by,
        )
        recorded = self.manager.record_outcome(app, request.id, entry)
        if self._on_change is not None and result != "not-applied":
            try:
                self._on_change(app, entry, request.id)
            except Exception:  # the write is recorded; the alert is not worth failing it for
                log.exception("the change alert of a settings change could not be queued")
        return Applied(_result_text(app, tag, result, detail, user, recorded), result)

    def apply_approved(self, app: ManagedApp, request: ChangeRequest, approver: str) -> Message:
        """A second admin approved a settings request (LanguageManager.approve checked who may): the
        settings read again (a change made meanwhile writes nothing), the claim, the one write."""
        if not request.read_values or not request.new_values:
            return messages.refusal_message("This request holds no settings to write.")
        read = EditableSettings.of_json_settings(request.read_values)
        wanted = EditableSettings.from_json(request.new_values)
        names = changed_fields(read, wanted)
        try:
            current = app.client.robot_settings(request.tag)
        except DeskError as error:
            return messages.refusal_message(
                f"Couldn't read the chatbot settings of {_named(request.tag)} again before writing: "
                f"{escape(error.meaning)}. Nothing was sent to Desk; the request still waits. {escape(error.hint)}"
            )
        moved = changed_fields(read, EditableSettings.of(current))
        if moved:
            gate = self.manager.gate
            gate.end(app, request, RequestState.SUPERSEDED, approver,
                     detail="the settings changed in Desk since they were asked for")
            return messages.refusal_message(_moved_text(request.tag, read, EditableSettings.of(current), moved))
        try:
            won = self.store.decide(request.id, to=RequestState.APPLYING, user=approver, now=self._clock(),
                                    from_state=RequestState.AWAITING)
        except DB_DOWN_ERRORS as error:
            return messages.refusal_message(_database_down(error))
        if not won:
            return messages.refusal_message(self.manager.why_not_pending(request.id))
        applied = self._write_claimed(app, request, approver, current, read, wanted, names)
        self.manager.gate.approved(app, request, approver, applied.result or "unknown")
        return message_of(applied.text, [section(applied.text)])

    def _write(
        self, app: ManagedApp, tag: str, current: RobotSettings, read: EditableSettings,
        wanted: EditableSettings, names: list[str],
    ) -> tuple[str, str]:
        """Desk's answer to the one write: (result, audit detail)."""
        changed = audit_detail(read, wanted)
        try:
            app.client.update_robot_settings(tag, onto(current, wanted, names))
        except DeskError as error:
            if not write_may_have_run(error):
                return "not-applied", f"{error.code}: {error.meaning}; asked: {changed}"
            try:
                now = EditableSettings.of(app.client.robot_settings(tag))
            except DeskError:
                return "unknown", f"Desk's answer was lost ({error.code}) and the settings could not be read again; " \
                                  f"asked: {changed}"
            result = outcome_of(read, wanted, now)
            return result, f"Desk's answer was lost ({error.code}); the settings read again: {result}; {changed}"
        return "applied", changed


def _named(tag: str) -> str:
    return f"{escape(language_name(tag))} ({code_text(tag)})"


def _not_served(app: ManagedApp, tag: str) -> str:
    return (
        f"{_named(tag)} is not one of the chatbot languages of {escape(app.render.title)}, so it has no settings "
        f"to change. Add it first: `add {tag}`."
    )


def _database_down(error: BaseException) -> str:
    log.warning("a settings change could not be read or stored: the database is down (%s)", type(error).__name__)
    return (
        "The bot's database did not answer, so nothing was sent to Desk. Try again in a minute; if it keeps "
        "happening, check DATABASE_URL."
    )


def _moved_text(tag: str, read: EditableSettings, now: EditableSettings, names: list[str]) -> str:
    lines = [
        f"• *{escape(LABELS[name])}*: when the modal opened {escape(shown(name, getattr(read, name))[:200])}, "
        f"now {escape(shown(name, getattr(now, name))[:200])}"
        for name in names
    ]
    return (
        f"The chatbot settings of {_named(tag)} changed in Desk since this modal opened (the console, or another "
        "admin), so nothing was written:\n" + "\n".join(lines)
        + "\nRun the command again to start from what Desk has now."
    )


def _result_text(app: ManagedApp, tag: str, result: str, detail: str, user: str, recorded: bool) -> str:
    icon = {"applied": ":white_check_mark:", "not-applied": ":x:"}.get(result, ":grey_question:")
    said = {
        "applied": f"Changed the chatbot settings of {_named(tag)}",
        "not-applied": f"Desk refused to change the chatbot settings of {_named(tag)}; nothing changed",
        "not-seen": f"Desk's answer was lost; the settings of {_named(tag)} read again do not show the change (yet)",
        "unknown": f"Desk's answer was lost; whether the settings of {_named(tag)} changed is unknown",
    }[result]
    text = f"{icon} {said} in *{escape(app.render.title)}*, by {mention(user)}.\n{escape(detail)}"
    if result in ("not-seen", "unknown"):
        text += "\nDo not apply again blindly: run `settings " + tag + "` to see what Desk has now."
    if not recorded:
        text += (
            "\n:hourglass_flowing_sand: The change was sent to Desk, but the bot's database did not answer, so it is "
            "not recorded yet: the record and the audit channel's line follow once the database is back."
        )
    return text
