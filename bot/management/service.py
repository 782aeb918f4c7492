"""Adding and removing a chatbot language from Slack (or the CLI): permission, validation,
confirmation, exactly one write per intent, and the audit trail.

1. `request()` checks that management is on for the app and the user is an admin, then that
   the tag is one Desk supports (suggesting one for near-misses), that the change makes sense
   against the current list (already present, absent, the default, over the limit) — all
   before anything is sent — and stores a confirmation (single-use, 10 minutes).
2. `confirm()` checks the clicker is an admin too, then claims the confirmation in the
   database (one statement: only one click, in one process, wins), calls Desk once (the
   client never repeats a write whose answer was lost; it reads the list again instead),
   records the attempt, posts it to DESK_AUDIT_CHANNEL, and returns the result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from slack_sdk import WebClient

from bot import metrics
from bot.blocks import Message, RenderContext, code_text, escape, mention
from bot.desk import DeskClient, DeskError, LanguageList
from bot.desk.languages import ADVANCED_EDITION_LANGUAGE_LIMIT, SUPPORTED_TAGS, suggest_tag
from bot.desk.models import language_name
from bot.desk.writes import WriteOutcome
from bot.management import messages
from bot.management.admins import AdminDirectory
from bot.management.store import AuditEntry, ChangeStore, RequestState

log = logging.getLogger(__name__)

CONFIRMATION_TTL = 600.0  # seconds a confirmation stays usable


class ManagedApp(Protocol):
    """What the manager needs of a Desk app (the bot's DeskApp has it)."""

    @property
    def name(self) -> str: ...

    @property
    def client(self) -> DeskClient: ...

    @property
    def render(self) -> RenderContext: ...


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
    ) -> None:
        self._apps = {app.name: app for app in apps}
        self.store = store
        self.admins = admins
        self._poster = poster
        self._audit_channel = audit_channel
        self._clock = clock

    # --- step 1: the request ---------------------------------------------------------------------

    def request(self, app: ManagedApp, user: str, action: str, text: str, *, check_admin: bool = True) -> Message:
        """The confirmation to show, or why there is none. `text` is what the user typed."""
        if check_admin:
            refused = self._permission_problem(app, user)
            if refused is not None:
                return messages.refusal_message(refused)
        tag, problem = self.check(app, action, text)
        if problem is not None or tag is None:
            return messages.refusal_message(problem or "Nothing to change.")
        request_id = self.store.create_request(
            app=app.name, action=action, tag=tag, user=user, now=self._clock(), ttl=CONFIRMATION_TTL
        )
        return messages.confirmation_message(action, tag, app.render, request_id, int(CONFIRMATION_TTL // 60))

    def check(self, app: ManagedApp, action: str, text: str) -> tuple[str | None, str | None]:
        """(the supported tag, None), or (None, why not) as mrkdwn: everything checked before a
        write is offered — the tag, then the change against the app's current list."""
        typed = text.strip()
        supported = ", ".join(f"`{t}`" for t in SUPPORTED_TAGS)
        if not typed:
            return None, f"Name the language to {action}, e.g. `{action} vi`: {supported}."
        if typed not in SUPPORTED_TAGS:
            suggested = suggest_tag(typed)
            if suggested is not None:
                return None, (
                    f"{code_text(typed[:40])} is not a tag Desk uses. Did you mean `{suggested}` "
                    f"({language_name(suggested)})? Desk supports {supported}."
                )
            return None, f"{code_text(typed[:40])} is not a language Desk's chatbot supports. Supported: {supported}."
        try:
            current = app.client.get_languages()
        except DeskError as error:
            return None, (
                f"Couldn't read {_title(app)}'s languages to check the change: {escape(error.meaning)}. "
                f"{escape(error.hint)}"
            )
        problem = _change_problem(action, typed, current)
        return (None, problem) if problem is not None else (typed, None)

    # --- step 2: the click -------------------------------------------------------------------------

    def confirm(self, request_id: str, user: str, *, check_admin: bool = True) -> Message:
        request = self.store.get_request(request_id)
        app = self._apps.get(request.app) if request is not None else None
        if request is None or app is None:
            return messages.refusal_message("This confirmation is not known (any more). Ask again with the command.")
        if check_admin:
            refused = self._permission_problem(app, user)
            if refused is not None:
                return messages.refusal_message(refused)
        if not self.store.decide(request_id, to=RequestState.APPLYING, user=user, now=self._clock()):
            return messages.refusal_message(self._why_not_pending(request_id))
        outcome = self._write(app, request.action, request.tag)
        self.store.finish(request_id, outcome.status.value)
        self._record(app, user, outcome, request_id)
        return messages.result_message(outcome, app.render, user)

    def cancel(self, request_id: str, user: str) -> Message:
        request = self.store.get_request(request_id)
        if request is None:
            return messages.refusal_message("This confirmation is not known (any more).")
        if not self.store.decide(request_id, to=RequestState.CANCELLED, user=user, now=self._clock()):
            return messages.refusal_message(self._why_not_pending(request_id))
        verb = messages.VERBS[request.action][0]
        return messages.notice_message(f"Cancelled: nothing was sent to Desk (not {verb}ing `{request.tag}`).")

    def history(self, app: ManagedApp) -> Message:
        return messages.history_message(self.store.history(app.name), app.render)

    # --- what every path shares ----------------------------------------------------------------------

    def _permission_problem(self, app: ManagedApp, user: str) -> str | None:
        admins = self.admins.admins(app.name)
        if not admins.enabled:
            return (
                f"Changing languages from Slack is off for {_title(app)}. To turn it on, set "
                f"`{admins.variable}` to the Slack user or user-group IDs who may do it."
            )
        if not self.admins.is_admin(app.name, user):
            return f"Only these people can change {_title(app)}'s languages: {admins.mentions()}."
        return None

    def _why_not_pending(self, request_id: str) -> str:
        request = self.store.get_request(request_id)
        if request is None:
            return "This confirmation is not known (any more)."
        if request.state is RequestState.CANCELLED:
            return "This change was cancelled; nothing was sent to Desk."
        if request.state in (RequestState.APPLYING, RequestState.DONE):
            decider = request.decided_by
            by = f" by {mention(decider)}" if decider and decider[:1] in "UW" else ""
            return f"This change was already confirmed{by}; it is applied at most once."
        return "This confirmation expired (they last 10 minutes). Ask again with the command."

    def _write(self, app: ManagedApp, action: str, tag: str) -> WriteOutcome:
        if action == "add":
            return app.client.add_language(tag)
        return app.client.remove_language(tag)

    def _record(self, app: ManagedApp, who: str, outcome: WriteOutcome, request_id: str | None) -> None:
        detail = None
        if outcome.error is not None:
            detail = f"{outcome.error.code}: {outcome.error.meaning}"[:300]
        entry = AuditEntry(
            at=self._clock(),
            who=who,
            app=app.name,
            sdkappid=app.client.sdkappid,
            action=outcome.action.value,
            tag=outcome.tag,
            result=outcome.status.value,
            detail=detail,
        )
        self.store.record(entry, request_id)
        metrics.language_change(app.name, entry.action, entry.result)
        log.info("language change: %s %s %s in %s: %s", who, entry.action, entry.tag, app.name, entry.result)
        if self._poster is not None and self._audit_channel:
            line = messages.audit_line(entry, app.render)
            try:
                self._poster.chat_postMessage(
                    channel=self._audit_channel, text=line["text"], blocks=line["blocks"], unfurl_links=False
                )
            except Exception as error:  # noqa: BLE001  the change is recorded in the database either way
                log.warning("the audit line could not be posted to DESK_AUDIT_CHANNEL (%s)", type(error).__name__)

    # --- the command line ------------------------------------------------------------------------------

    def apply_from_cli(self, app: ManagedApp, who: str, action: str, tag: str) -> WriteOutcome:
        """The CLI's path: already validated and confirmed on the terminal; recorded like a click."""
        outcome = self._write(app, action, tag)
        self._record(app, who, outcome, None)
        return outcome


def _title(app: ManagedApp) -> str:
    return escape(app.render.title)


def _change_problem(action: str, tag: str, current: LanguageList) -> str | None:
    """Why `action tag` makes no sense against the current list, or None."""
    name = f"{language_name(tag)} (`{tag}`)"
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
