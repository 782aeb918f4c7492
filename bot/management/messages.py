"""Block Kit for language changes: the confirmation, refusals, the result and the history.

Pure functions, no I/O, built from `bot.blocks`' builders (so the same limits and escaping).
"""

from __future__ import annotations

from slack_sdk.models.blocks import ActionsBlock, ButtonElement, ConfirmObject, PlainTextObject

from bot.blocks import (
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
from bot.desk.models import language_name
from bot.desk.writes import WriteOutcome, WriteStatus
from bot.management.store import AuditEntry

CONFIRM_ACTION = "desk_languages_change_confirm"
CANCEL_ACTION = "desk_languages_change_cancel"
VERBS = {"add": ("add", "added", "to"), "remove": ("remove", "removed", "from")}


def language_text(tag: str) -> str:
    return f"{escape(language_name(tag))} ({code_text(tag)})" if tag else escape(language_name(tag))


def _where(ctx: RenderContext) -> str:
    return f"*{clean_text(ctx.title, 80)}* (SDKAppID {ctx.sdkappid}, {clean_text(ctx.region, 80)})"


def confirmation_message(action: str, tag: str, ctx: RenderContext, request_id: str, minutes: int) -> Message:
    """What will happen, to which app, that it is live at once; Confirm and Cancel."""
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
            ActionsBlock(elements=[confirm, cancel]).to_dict(),
            context(f"Only an admin can confirm. This confirmation works once and expires in {minutes} minutes."),
        ],
    )


def refusal_message(text: str) -> Message:
    """`text` is mrkdwn the bot composed (mentions allowed): outside parts in it are escaped already."""
    return message_of(f"Not done: {text}", [section(f":no_entry: {text}")])


def result_message(outcome: WriteOutcome, ctx: RenderContext, who: str) -> Message:
    """The write's result, replacing the confirmation, then the list as it is now."""
    icon = {WriteStatus.APPLIED: ":white_check_mark:", WriteStatus.NOT_APPLIED: ":x:"}.get(
        outcome.status, ":grey_question:"
    )
    described = escape(outcome.describe())
    lines = [f"{icon} {described}"]
    if outcome.error is not None and outcome.status is not WriteStatus.APPLIED:
        lines.append(f"{code_text(str(outcome.error.code))}: {escape(outcome.error.hint)}")
    lines.append(f"Confirmed by {mention(who)} for {_where(ctx)}." if who[:1] in "UW" else f"For {_where(ctx)}.")
    head = [section("\n".join(lines))]
    if outcome.languages is None:
        return message_of(described, head)
    listing = languages_message(outcome.languages, ctx, buttons=False)
    return message_of(f"{described} {listing['text']}", [*head, *listing["blocks"]])


def audit_line(entry: AuditEntry, ctx: RenderContext) -> Message:
    """One line for DESK_AUDIT_CHANNEL."""
    verb = _done(entry.action)
    who = _who(entry.who)
    detail = f" ({escape(entry.detail)})" if entry.detail else ""
    text = (
        f":memo: {who} {verb} {language_text(entry.tag)} · {_where(ctx)} · "
        f"*{escape(entry.result)}*{detail} · {slack_date(entry.at)}"
    )
    fallback = f"{escape(entry.who)} {verb} {escape(entry.tag)} in {escape(ctx.title)}: {escape(entry.result)}"
    return message_of(fallback, [section(text)])


def _done(action: str) -> str:
    """The past tense of a recorded action ("added"); an unknown one as it was recorded, escaped."""
    return VERBS[action][1] if action in VERBS else escape(action)


def _who(user: str) -> str:
    """Who changed a language: a Slack user as a mention, the CLI's `cli:alice` as code."""
    return mention(user) if user[:1] in "UW" else code_text(user)


def history_message(entries: list[AuditEntry], ctx: RenderContext) -> Message:
    if not entries:
        return notice_message(f"No language has been changed through the bot for {ctx.title} yet.")
    lines = []
    for entry in entries:
        verb = _done(entry.action)
        who = _who(entry.who)
        detail = f" ({escape(entry.detail)})" if entry.detail else ""
        result = escape(entry.result)
        lines.append(f"{slack_date(entry.at)} · {who} {verb} {language_text(entry.tag)} · {result}{detail}")
    return message_of(
        f"The last {len(entries)} language changes for {escape(ctx.title)}.",
        [section(f"*Language changes through the bot* · {_where(ctx)}"), *[section(line) for line in lines]],
    )

