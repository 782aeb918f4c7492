"""Block Kit for language changes: the confirmation, refusals, the result and the history.

Pure functions, no I/O, built from `bot.slack.blocks`' builders (so the same limits and escaping).
"""

from __future__ import annotations

from slack_sdk.models.blocks import ActionsBlock, ButtonElement, ConfirmObject, PlainTextObject

from bot.desk.languages import SUPPORTED_TAGS, suggest_tag
from bot.desk.models import language_name
from bot.desk.writes import WriteOutcome, WriteStatus
from bot.management.store import AuditEntry
from bot.slack.blocks import (
    Message,
    RenderContext,
    channel_mention,
    clean_text,
    code_text,
    context,
    escape,
    languages_message,
    mention,
    message_of,
    notice_message,
    section,
    slack_date,
)

CONFIRM_ACTION = "desk_languages_change_confirm"
CANCEL_ACTION = "desk_languages_change_cancel"
APPROVE_ACTION = "desk_languages_change_approve"
REJECT_ACTION = "desk_languages_change_reject"
VERBS = {
    "add": ("add", "added", "to"),
    "remove": ("remove", "removed", "from"),
    "settings": ("change the chatbot settings of", "changed the chatbot settings of", "of"),
}


def language_text(tag: str) -> str:
    return f"{escape(language_name(tag))} ({code_text(tag)})" if tag else escape(language_name(tag))


def supported_tags_text() -> str:
    return ", ".join(f"`{tag}`" for tag in SUPPORTED_TAGS)


def unsupported_tag_problem(typed: str) -> str | None:
    """Why `typed` is not a tag Desk's chatbot supports, with the tag it most likely means, as
    mrkdwn; None for a supported tag. The same answer for every command that takes a tag."""
    if typed in SUPPORTED_TAGS:
        return None
    suggested = suggest_tag(typed)
    if suggested is not None:
        return (
            f"{code_text(typed[:40])} is not a tag Desk uses. Did you mean `{suggested}` "
            f"({language_name(suggested)})? Desk supports {supported_tags_text()}."
        )
    return f"{code_text(typed[:40])} is not a language Desk's chatbot supports. Supported: {supported_tags_text()}."


def _where(ctx: RenderContext) -> str:
    return f"*{clean_text(ctx.title, 80)}* (SDKAppID {ctx.sdkappid}, {clean_text(ctx.region, 80)})"


def confirmation_message(
    action: str, tag: str, ctx: RenderContext, request_id: str, minutes: int, note: str | None = None
) -> Message:
    """What will happen, to which app, that it is live at once; Confirm and Cancel. `note`: what
    the change does to the declared state (mrkdwn, made safe by its maker)."""
    verb, _, preposition = VERBS[action]
    plain = f"{escape(language_name(tag))} ({escape(tag)})"  # the buttons' and the fallback's words
    what = f"{verb.capitalize()} {language_text(tag)} {preposition} {_where(ctx)}?"
    effect = (
        "The chatbot starts serving it in production at once."
        if action == "add"
        else "The chatbot stops serving it in production at once."
    )
    confirm = ButtonElement(
        text=PlainTextObject(text=f"Confirm: {verb} {escape(tag)}"[:75]),
        action_id=CONFIRM_ACTION,
        value=request_id,
        style="primary" if action == "add" else "danger",
        confirm=None
        if action == "add"
        else ConfirmObject(
            title=PlainTextObject(text="Remove a language?"),
            text=PlainTextObject(text=f"{plain} stops being served at once."[:300]),
            confirm=PlainTextObject(text="Remove"),
            deny=PlainTextObject(text="Keep it"),
            style="danger",
        ),
    )
    cancel = ButtonElement(text=PlainTextObject(text="Cancel"), action_id=CANCEL_ACTION, value=request_id)
    return message_of(
        f"{verb.capitalize()} {plain}? Confirm or cancel.",
        [
            section(f":warning: {what}\n{effect}"),
            *([context(f":information_source: {note}")] if note else []),
            ActionsBlock(elements=[confirm, cancel]).to_dict(),
            context(f"Only an admin can confirm. This confirmation works once and expires in {minutes} minutes."),
        ],
    )


def refusal_message(text: str) -> Message:
    """`text` is mrkdwn the bot composed (mentions allowed): outside parts in it are escaped already."""
    return message_of(f"Not done: {text}", [section(f":no_entry: {text}")])


def _person(user: str | None) -> str:
    return mention(user) if user and user[:1] in "UW" else code_text(user or "unknown")


def people_text(requested_by: str | None, confirmed_by: str) -> str:
    """Who asked and who confirmed (any admin may confirm another's request)."""
    if requested_by is None:
        return f"By {_person(confirmed_by)}"
    if requested_by == confirmed_by:
        return f"Requested and confirmed by {_person(confirmed_by)}"
    return f"Requested by {_person(requested_by)}, confirmed by {_person(confirmed_by)}"


def result_message(
    outcome: WriteOutcome, ctx: RenderContext, who: str, *, requested_by: str | None = None, recorded: bool = True
) -> Message:
    """The write's result, replacing the confirmation, then the list as it is now. When it could
    not be recorded yet, it says so, and that the record follows (never "try again": Desk may
    have applied it)."""
    icon = {WriteStatus.APPLIED: ":white_check_mark:", WriteStatus.NOT_APPLIED: ":x:"}.get(
        outcome.status, ":grey_question:"
    )
    described = escape(outcome.describe())
    lines = [f"{icon} {described}"]
    if outcome.error is not None and outcome.status is not WriteStatus.APPLIED:
        lines.append(f"{code_text(str(outcome.error.code))}: {escape(outcome.error.hint)}")
    lines.append(f"{people_text(requested_by, who)} for {_where(ctx)}.")
    if not recorded:
        lines.append(
            ":hourglass_flowing_sand: The change was sent to Desk, but the bot's database did not answer, so it is "
            "not recorded yet: the record and the audit channel's line follow once the database is back. "
            "Do not ask again; the list below is what Desk has now."
        )
    head = [section("\n".join(lines))]
    if outcome.languages is None:
        return message_of(described, head)
    listing = languages_message(outcome.languages, ctx, buttons=False)
    return message_of(f"{described} {listing['text']}", [*head, *listing["blocks"]])


def change_text(entry: AuditEntry) -> str:
    """Who confirmed, what the write did as its result says ("added", "tried to remove …; Desk
    refused: …", "asked Desk to add …; the list read again does not show it"), and who asked
    when that was someone else."""
    unknown = escape(entry.action)  # an action this version does not know, as it was recorded
    verb, done, _ = VERBS.get(entry.action, (unknown, unknown, "in"))
    what = language_text(entry.tag)
    detail = escape(entry.detail) if entry.detail else ""
    if entry.result in UNWRITTEN:
        asked_by = _person(entry.requested_by or entry.who)
        ended = {
            "rejected": f"{_person(entry.who)} rejected {asked_by}'s request to {verb} {what}",
            "cancelled": f"{_person(entry.who)} cancelled "
                         + (f"{asked_by}'s request" if entry.requested_by not in (None, entry.who) else "the request")
                         + f" to {verb} {what}",
            "expired": f"{asked_by}'s request to {verb} {what} expired: no second admin approved it",
            "superseded": f"{_person(entry.who)} approved {asked_by}'s request to {verb} {what}, which no longer "
                          "applied",
        }[entry.result]
        return ended + (f" ({detail})" if detail else "") + "; nothing was written"
    if entry.result == WriteStatus.APPLIED:
        did = f"{done} {what}" + (f" ({detail})" if detail else "")
    elif entry.result == WriteStatus.NOT_APPLIED:
        did = f"tried to {verb} {what}; Desk refused" + (f": {detail}" if detail else "")
    elif entry.result == WriteStatus.NOT_SEEN:
        read_again = "the settings read again do not" if entry.action == "settings" else "the list read again does not"
        did = f"asked Desk to {verb} {what}; {read_again} show it" + (f" ({detail})" if detail else "")
    else:
        did = f"asked Desk to {verb} {what}; whether it was done is unknown" + (f" ({detail})" if detail else "")
    asked = f" · requested by {_person(entry.requested_by)}" if entry.requested_by not in (None, entry.who) else ""
    return f"{_person(entry.who)} {did}{asked}"


# Audit results of a request for approval that ended without a write (bot/management/store.py).
UNWRITTEN = ("rejected", "cancelled", "expired", "superseded")


def audit_line(entry: AuditEntry, ctx: RenderContext) -> Message:
    """One line for DESK_AUDIT_CHANNEL."""
    text = f":memo: {change_text(entry)} · {_where(ctx)} · *{escape(entry.result)}* · {slack_date(entry.at)}"
    return message_of(f"{change_text(entry)} · {clean_text(ctx.title, 80)}: {escape(entry.result)}", [section(text)])


def history_message(entries: list[AuditEntry], ctx: RenderContext) -> Message:
    if not entries:
        return notice_message(f"No language has been changed through the bot for {ctx.title} yet.")
    lines = [f"{slack_date(entry.at)} · {change_text(entry)} · {escape(entry.result)}" for entry in entries]
    return message_of(
        f"The last {len(entries)} language changes for {escape(ctx.title)}.",
        [section(f"*Language changes through the bot* · {_where(ctx)}"), *[section(line) for line in lines]],
    )



# --- two-person approval ---------------------------------------------------------------------------


def approval_what(action: str, tag: str, ctx: RenderContext) -> str:
    """"add Vietnamese (`vi`) to *Production* (SDKAppID …)": what a request asks, as mrkdwn."""
    verb, _, preposition = VERBS[action]
    return f"{verb} {language_text(tag)} {preposition} {_where(ctx)}"


def approval_request_message(
    request_id: str, requested_by: str, what: str, detail: str | None, expires_at: float,
    ended: str | None = None, *, others_only: bool = True,
) -> Message:
    """The request in DESK_AUDIT_CHANNEL: who asks for what, Approve and Reject while it waits;
    once it has ended (`ended`: mrkdwn, what happened), the same request without buttons."""
    head = f":raised_hand: *Approval needed*: {_person(requested_by)} asks to {what}."
    body = [section(head), *([section(detail)] if detail else [])]
    if ended is not None:
        return message_of(f"{_person(requested_by)} asked to {what}: {ended}", [*body, section(ended)])
    approve = ButtonElement(
        text=PlainTextObject(text="Approve"), action_id=APPROVE_ACTION, value=request_id, style="primary",
        confirm=ConfirmObject(
            title=PlainTextObject(text="Approve the change?"),
            text=PlainTextObject(text="It is written to Desk at once, in production."),
            confirm=PlainTextObject(text="Approve"),
            deny=PlainTextObject(text="Not yet"),
        ),
    )
    reject = ButtonElement(text=PlainTextObject(text="Reject"), action_id=REJECT_ACTION, value=request_id,
                           style="danger")
    return message_of(
        f"Approval needed: {_person(requested_by)} asks to {what}.",
        [
            *body,
            ActionsBlock(elements=[approve, reject]).to_dict(),
            context(
                f"Any admin of the app{f' except {_person(requested_by)}' if others_only else ''} may approve or "
                f"reject. Nothing is written until then; the request expires {slack_date(expires_at)}."
            ),
        ],
    )


def awaiting_message(request_id: str, what: str, channel: str, expires_at: float) -> Message:
    """For the requester once Confirm made it a request: where it waits, until when; Cancel."""
    cancel = ButtonElement(text=PlainTextObject(text="Cancel the request"), action_id=CANCEL_ACTION, value=request_id)
    text = (
        f":hourglass_flowing_sand: Waiting for a second admin: your request to {what} is in "
        f"{channel_mention(channel)}. Nothing is written until another admin approves it; it expires "
        f"{slack_date(expires_at)}."
    )
    return message_of(f"Waiting for a second admin to approve: {what}.",
                      [section(text), ActionsBlock(elements=[cancel]).to_dict()])
