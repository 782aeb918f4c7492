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

