"""Block Kit for channel digests: the digest itself, and the answers to `/desk-languages digest …`.

Pure functions, no I/O. Every block comes from `bot.slack.blocks`' builders, so digests obey
the same Block Kit limits (text lengths, block count) and escaping as every other message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.desk.changes import Changes
from bot.desk.models import LanguageList
from bot.desk.readiness import ReadinessReport
from bot.digests.schedule import EXAMPLES, Schedule
from bot.digests.store import PostRecord, PostState, Subscription
from bot.slack.blocks import (
    LONG_DATE,
    NAME_LIMIT,
    Block,
    Message,
    RenderContext,
    clean_text,
    context,
    escape,
    header,
    language_label,
    language_names,
    languages_message,
    message_of,
    section,
    slack_date,
)
from bot.slack.grammar import COMMAND


@dataclass(frozen=True)
class AppTitle:
    """How replies name a Desk app, when the bot serves several (None stands for "one app: say nothing")."""

    name: str  # as typed in the command: `/desk-languages staging digest …`
    label: str  # as people know it: "Staging (Frankfurt)"


def app_label(ctx: RenderContext) -> str:
    """The app's name for people: its label, else its SDKAppID."""
    return ctx.label or f"SDKAppID {ctx.sdkappid}"


def _of(app: AppTitle | None) -> str:
    """" of *Staging (Frankfurt)*" (mrkdwn), or nothing for a single app."""
    return f" of *{clean_text(app.label, NAME_LIMIT)}*" if app else ""


def _plain_of(app: AppTitle | None) -> str:
    return f" of {escape(app.label)}" if app else ""


def command(app: AppTitle | None, rest: str) -> str:
    """The command a reader would type for this app: `/desk-languages staging digest off`."""
    return f"{COMMAND} {escape(app.name)} {rest}" if app else f"{COMMAND} {rest}"


def _message(fallback: str, *blocks: Block) -> Message:
    return message_of(fallback, list(blocks))


def when_text(instant: datetime, schedule: Schedule, reader_zone: str | None) -> tuple[str, str]:
    """(mrkdwn, plain) for a scheduled instant: Slack renders `<!date>` in each reader's own zone;
    the plain fallback uses the reader's zone when known, else the schedule's."""
    zone = _zone_or_none(reader_zone) or schedule.tz
    local = instant.astimezone(zone)
    plain = f"{local:%a %d %b %Y %H:%M} ({zone.key})"
    return slack_date(instant.timestamp(), LONG_DATE, plain), plain


def _zone_or_none(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        return None


def examples_text(app: AppTitle | None = None) -> str:
    return " · ".join(f"`{command(app, example)}`" for example in EXAMPLES)


def subscribed_message(
    schedule: Schedule,
    next_at: datetime,
    replaced: Subscription | None,
    reader_zone: str | None,
    app: AppTitle | None = None,
) -> Message:
    when, plain = when_text(next_at, schedule, reader_zone)
    text = f":white_check_mark: This channel will get the Desk languages{_of(app)} *{schedule.describe()}*."
    fallback = f"Digest{_plain_of(app)} subscribed: {schedule.describe()}. Next: {plain}."
    if replaced is not None and replaced.schedule != schedule.text():
        text += f"\nThis replaces the previous digest (`{escape(replaced.schedule)}`)."
        fallback += " Replaces the previous digest."
    elif replaced is not None:
        text += "\nThis channel already had this digest; it is unchanged."
    return _message(
        fallback,
        section(text + f"\nNext digest: {when}."),
        context(
            "The bot must be a member of this channel to post here (`/invite` it). "
            f"Stop with `{command(app, 'digest off')}`."
        ),
    )


def status_message(
    subscription: Subscription | None,
    schedule: Schedule | None,
    next_at: datetime | None,
    last: PostRecord | None,
    reader_zone: str | None,
    app: AppTitle | None = None,
) -> Message:
    if subscription is None:
        return _message(
            f"This channel has no digest{_plain_of(app)}.",
            section(
                f"This channel has no Desk languages digest{_of(app)}.\n"
                f"Subscribe with, for example, `{command(app, 'digest weekdays 09:00 Europe/Berlin')}`."
            ),
        )
    described = schedule.describe() if schedule else f"`{escape(subscription.schedule)}`"
    lines = [f":calendar: This channel gets the Desk languages{_of(app)} *{described}*."]
    fallback = f"Digest{_plain_of(app)}: {schedule.describe() if schedule else escape(subscription.schedule)}."
    if not subscription.enabled:
        reason = escape(subscription.disabled_reason or "unknown reason")
        lines.append(f":no_entry: *Paused:* {reason}. Subscribe again to resume.")
        fallback += " Paused."
    elif next_at is not None and schedule is not None:
        when, plain = when_text(next_at, schedule, reader_zone)
        lines.append(f"Next digest: {when}.")
        fallback += f" Next: {plain}."
    if subscription.hint:
        lines.append(f":warning: {escape(subscription.hint)}")
        fallback += f" {escape(subscription.hint)}"
    blocks = [section("\n".join(lines))]
    if last is not None:
        blocks.append(context(_last_text(last)))
    return _message(fallback, *blocks)


def _last_text(last: PostRecord) -> str:
    if last.state is PostState.POSTED and last.posted_at is not None:
        return f"Last digest: posted {slack_date(last.posted_at)}."
    if last.state is PostState.RELEASED:
        return f"Last attempt ({escape(last.period)}) failed and will be retried: {escape(last.error or '?')}"
    if last.state is PostState.SKIPPED:
        return f"Digest for {escape(last.period)} was skipped: {escape(last.error or '?')}"
    return f"Digest for {escape(last.period)} is being posted."


def stopped_message(previous: Subscription | None, app: AppTitle | None = None) -> Message:
    if previous is None:
        return _message(
            f"This channel had no digest{_plain_of(app)}.",
            section(f"This channel had no Desk languages digest{_of(app)}; nothing to stop."),
        )
    return _message(
        f"Digest{_plain_of(app)} stopped.",
        section(
            f":wave: Digest stopped. This channel no longer gets the Desk languages{_of(app)} "
            f"`{escape(previous.schedule)}`."
            if app
            else f":wave: Digest stopped. This channel no longer gets `{escape(previous.schedule)}`."
        ),
    )


def error_reply(problem: str, app: AppTitle | None = None) -> Message:
    """A bad schedule: what is wrong (it may quote what the user typed) and valid examples."""
    return _message(
        f"Not a digest schedule: {escape(problem)} Example: {command(app, EXAMPLES[1])}",
        section(f":x: {escape(problem)}\nNothing was changed."),
        context(f"Examples: {examples_text(app)}"),
    )


def posted_notice(ok: bool, detail: str) -> Message:
    text = (":white_check_mark: " if ok else ":x: ") + escape(detail)
    return _message(escape(detail), section(text))


# --- the digest itself ----------------------------------------------------------------------------

def _change_lines(changes: Changes) -> tuple[list[str], str]:
    """mrkdwn lines saying what changed, and a short plain summary for the fallback text."""
    if changes.first:
        return ["_First digest in this channel: later digests will say what changed._"], "first digest"
    if changes.none:
        return [":white_check_mark: *No changes* since the previous digest."], "no changes"
    lines, summary = [], []
    if changes.added:
        lines.append(f":heavy_plus_sign: *Added:* {language_names(changes.added)}")
        summary.append(f"{len(changes.added)} added")
    if changes.removed:
        lines.append(f":heavy_minus_sign: *Removed:* {language_names(changes.removed)}")
        summary.append(f"{len(changes.removed)} removed")
    if changes.default_changed:
        before = language_label(changes.default_before) if changes.default_before else "_none_"
        after = language_label(changes.default_after) if changes.default_after else "_none_"
        lines.append(f":star: *Default changed:* {before} → {after}")
        summary.append("default changed")
    return ["*Changes since the previous digest*", *lines], ", ".join(summary)


def digest_message(
    lst: LanguageList,
    changes: Changes,
    ctx: RenderContext,
    *,
    named: bool = False,
    readiness: ReadinessReport | None = None,
    drift: str | None = None,
) -> Message:
    """A channel digest: what changed since the channel's previous digest, then the list
    as the command shows it (stale warning included), without the buttons, and one line on
    readiness naming the flagged languages when a report is known. `named` (the bot serves
    several Desk apps) puts the app's label in the header and the fallback text. `drift`: the
    line on the declared state (mrkdwn, made safe by change control)."""
    listing = languages_message(lst, ctx, buttons=False)
    change_lines, summary = _change_lines(changes)
    blocks = listing["blocks"]
    label = clean_text(app_label(ctx), NAME_LIMIT) if named else ""
    head = header("Desk chatbot languages: digest" + (f" — {label}" if named else ""))
    changes_block = section("\n".join(change_lines))
    # The header is replaced; the changes go first, where a channel reader looks.
    body = blocks[1:] if blocks and blocks[0].get("type") == "header" else blocks
    if readiness is not None and readiness.languages:
        icon = ":white_check_mark:" if readiness.ready else ":warning:"
        body = [*body, context(f"{icon} *Readiness:* {escape(readiness.summary())} (`status` for details)")]
    if drift:
        body = [*body, context(drift)]
    fallback = f"Desk languages digest{f' — {label}' if named else ''} ({summary}). " + listing["text"]
    return message_of(fallback, [head, changes_block, *body])
