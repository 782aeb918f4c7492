"""The chatbot settings modal: `/desk-languages [APP] settings TAG`, the form's submission (the
review), Back, and Apply (bot/management/settings_editor.py does the work; views in
bot/management/settings_views.py).

- The command (and a Fix click) is acked empty. A thread of the modal's own (`ModalThreads` in
  bot/deps.py, never busy with Desk) checks what needs no Desk call (admin, tag) and opens a
  loading view at once with the trigger_id (it lives about 3 s; Desk may be slower); a filler
  thread then reads Desk and fills it with `views.update`, or says what failed.
- The form's submission is answered in its ack (Slack shows the answer, so a later update could
  race it): the errors under each field, or the review. That ack reads and updates the request row
  by its key in the bot's own database; it never calls Desk.
- Apply is acked with an "Applying…" view; the lazy listener writes and shows the result.
- Every step checks the signed payload's user; `private_metadata` only says which request and app.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.database import DB_DOWN_ERRORS
from bot.deps import BotDeps, DeskApp
from bot.management.messages import refusal_message
from bot.management.settings_editor import Loaded
from bot.management.settings_form import (
    FALLBACK_BLOCK,
    EditableSettings,
    changed_fields,
    changed_since,
    read_submission,
)
from bot.management.settings_views import (
    BACK_ACTION,
    FORM_CALLBACK,
    REVIEW_CALLBACK,
    ModalMetadata,
    applying_view,
    form_view,
    loading_view,
    notice_view,
    review_view,
)
from bot.slack import blocks

log = logging.getLogger(__name__)

UNEXPECTED = (
    "Something went wrong on the bot's side. If you pressed Apply, Desk may have applied the change: run "
    "`settings TAG` to see what Desk has before trying again. The details are in the bot's logs."
)


def open_settings_modal(deps: BotDeps, client: WebClient, command: dict[str, Any], app: DeskApp, args: str) -> None:
    """`settings TAG`: refused in an ephemeral reply, or a modal opened at once and filled later."""
    editor, user = deps.settings_editor, str(command.get("user_id") or "")
    reply_to = command.get("response_url")

    def refuse(text: str) -> None:
        """Ephemeral where there is a response_url; a Home tab click has none: a small modal then."""
        if reply_to:
            deps.responder.send(reply_to, refusal_message(text))
            return
        try:
            client.views_open(trigger_id=command.get("trigger_id", ""), view=notice_view(f":no_entry: {text}"))
        except SlackApiError as error:
            log.info("a settings refusal could not be shown (%s)", error.response.get("error", "error"))

    if editor is None:
        refuse("Changing chatbot settings is not available in this installation.")
        return
    refused = editor.refusal(app, user, args)
    if refused is not None:
        refuse(refused)
        return
    tag = args.strip()
    try:
        opened = client.views_open(trigger_id=command.get("trigger_id", ""), view=loading_view(app.render, tag))
    except SlackApiError as error:
        code = error.response.get("error", "error") if error.response is not None else "error"
        log.warning("the settings modal could not be opened (%s)", code)
        if reply_to:
            deps.responder.send(reply_to, refusal_message(
                f"Slack did not open the modal ({blocks.code_text(str(code))}): it must open within 3 seconds of "
                "the command. Run the command again."
            ))
        return
    deps.modal_threads.fillers.submit(_fill, deps, client, app, user, tag, opened["view"]["id"])


def _fill(deps: BotDeps, client: WebClient, app: DeskApp, user: str, tag: str, view_id: str) -> None:
    """Read Desk (it may take seconds) and fill the open modal: the form, or what failed."""
    editor = deps.settings_editor
    assert editor is not None  # checked before the modal opened
    try:
        loaded = editor.load(app, user, tag)
        if isinstance(loaded, Loaded):
            metadata = ModalMetadata(app.name, tag, loaded.request_id, _digests(loaded))
            view = form_view(app.render, metadata, loaded.settings)
        else:
            view = notice_view(f":no_entry: {loaded}")
    except Exception:
        log.exception("Unexpected failure while opening the settings modal")
        view = notice_view(UNEXPECTED)
    _update(client, view_id, view)


def _digests(loaded: Loaded) -> dict[str, str]:
    return EditableSettings.of(loaded.settings).digests()


def _update(client: WebClient, view_id: str, view: dict[str, Any], view_hash: str | None = None) -> None:
    try:
        client.views_update(view_id=view_id, view=view, hash=view_hash)
    except SlackApiError as error:  # the person closed the modal, or another update came first
        code = error.response.get("error", "error") if error.response is not None else "error"
        log.info("the settings modal could not be updated (%s)", code)


def register(app: App, deps: BotDeps) -> None:
    def submitted(body: dict[str, Any]) -> tuple[DeskApp | None, ModalMetadata | None, str]:
        view = body.get("view") or {}
        metadata = ModalMetadata.parse(view.get("private_metadata"))
        target = deps.configured.get(metadata.app) if metadata is not None else None
        return target, metadata, str((body.get("user") or {}).get("id") or "")

    def review(ack: Ack, body: dict[str, Any]) -> None:
        """The form's Review: errors under the fields, or the review in place of the form."""
        target, metadata, user = submitted(body)
        editor = deps.settings_editor
        if target is None or metadata is None or editor is None:
            ack(response_action="update", view=notice_view("This modal is not known (any more). Run the command "
                                                           "again."))
            return
        values = ((body.get("view") or {}).get("state") or {}).get("values") or {}
        wanted, errors = read_submission(values)
        if wanted is None:
            ack(response_action="errors", errors=errors)
            return
        if not changed_since(metadata.read, wanted):
            ack(response_action="errors", errors={FALLBACK_BLOCK: "Nothing changed: these are the settings Desk has."})
            return
        try:
            proposal = editor.propose(target, metadata.change, user, wanted)
        except DB_DOWN_ERRORS:
            ack(response_action="errors", errors={FALLBACK_BLOCK: "The bot's database did not answer, so nothing "
                                                                  "changed: press Review again in a minute."})
            return
        except Exception:
            log.exception("Unexpected failure while preparing the settings review")
            ack(response_action="update", view=notice_view(UNEXPECTED))
            return
        if isinstance(proposal, str):
            ack(response_action="update", view=notice_view(f":no_entry: {proposal}"))
            return
        read = EditableSettings.of(proposal.read)
        if not changed_fields(read, wanted):
            ack(response_action="errors", errors={FALLBACK_BLOCK: "Nothing changed: these are the settings Desk has."})
            return
        ack(response_action="update", view=review_view(target.render, metadata, read, wanted))

    def applying(ack: Ack, body: dict[str, Any]) -> None:
        target, metadata, _ = submitted(body)
        if target is None or metadata is None:
            ack(response_action="update", view=notice_view("This modal is not known (any more)."))
            return
        ack(response_action="update", view=applying_view(target.render, metadata))

    def apply(body: dict[str, Any], client: WebClient) -> None:
        target, metadata, user = submitted(body)
        editor = deps.settings_editor
        if target is None or metadata is None or editor is None:
            return
        try:
            text = editor.apply(target, metadata.change, user).text
        except Exception:
            log.exception("Unexpected failure while applying chatbot settings")
            text = UNEXPECTED
        _update(client, str((body.get("view") or {}).get("id") or ""), notice_view(text))

    def back(body: dict[str, Any], client: WebClient) -> None:
        """Back from the review: the form again, with what was entered."""
        view = body.get("view") or {}
        target, metadata, user = submitted(body)
        editor = deps.settings_editor
        if target is None or metadata is None or editor is None:
            return
        try:
            proposal = editor.proposal(target, metadata.change, user)
            if isinstance(proposal, str):
                shown = notice_view(f":no_entry: {proposal}")
            else:
                read = EditableSettings.of(proposal.read).digests()
                shown = form_view(target.render, ModalMetadata(target.name, proposal.request.tag, metadata.change,
                                                               read), proposal.read, proposal.wanted)
        except Exception:
            log.exception("Unexpected failure while going back to the settings form")
            shown = notice_view(UNEXPECTED)
        _update(client, str(view.get("id") or ""), shown, view.get("hash"))

    def ack_now(ack: Ack) -> None:
        ack()

    def fix(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        """Fix on a flagged language of `status`: the same modal as `settings TAG`, for that app,
        opened on the modal's own threads (see open_settings in handlers/commands.py)."""
        ack()
        action = (body.get("actions") or [{}])[0]
        app_name, _, tag = str(action.get("value") or "").partition(" ")
        target = deps.configured.get(app_name) if app_name else deps.default_app
        if target is None:
            return
        clicked = {"user_id": (body.get("user") or {}).get("id"), "trigger_id": body.get("trigger_id"),
                   "response_url": body.get("response_url")}  # none on the Home tab
        deps.modal_threads.openers.submit(open_settings_modal, deps, client, clicked, target, tag)

    app.view_submission(FORM_CALLBACK)(review)
    app.view_submission(REVIEW_CALLBACK)(ack=applying, lazy=[apply])
    app.action(BACK_ACTION)(ack=ack_now, lazy=[back])
    app.action(blocks.FIX_SETTINGS_ACTION)(fix)
