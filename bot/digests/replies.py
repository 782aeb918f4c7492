"""Block Kit replies to `/desk-languages digest …`: subscribed, status, stopped, and errors.

Pure functions, no I/O. The digest message itself (the list and its changes) is
`bot.blocks.digest_message`; these are the command's answers about the subscription.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject, SectionBlock

from bot.blocks import Message, escape
from bot.digests.schedule import EXAMPLES, Schedule
from bot.digests.store import PostRecord, PostState, Subscription

COMMAND = "/desk-languages"


def _section(text: str) -> dict:
    return SectionBlock(text=MarkdownTextObject(text=text, verbatim=True)).to_dict()


def _context(text: str) -> dict:
    return ContextBlock(elements=[MarkdownTextObject(text=text, verbatim=True)]).to_dict()


def _message(fallback: str, *blocks: dict) -> Message:
    return {"text": fallback, "blocks": list(blocks)}


def when_text(instant: datetime, schedule: Schedule, reader_zone: str | None) -> tuple[str, str]:
    """(mrkdwn, plain) for a scheduled instant: Slack renders `<!date>` in each reader's own zone;
    the plain fallback uses the reader's zone when known, else the schedule's."""
    zone = _zone_or_none(reader_zone) or schedule.tz
    local = instant.astimezone(zone)
    plain = f"{local:%a %d %b %Y %H:%M} ({zone.key})"
    seconds = int(instant.timestamp())
    mrkdwn = f"<!date^{seconds}^{{date_long_pretty}} at {{time}}|{plain}>"
    return mrkdwn, plain


def _zone_or_none(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        return None


def examples_text() -> str:
    return " · ".join(f"`{COMMAND} {example}`" for example in EXAMPLES)


def subscribed_message(
    schedule: Schedule, next_at: datetime, replaced: Subscription | None, reader_zone: str | None
) -> Message:
    when, plain = when_text(next_at, schedule, reader_zone)
    text = f":white_check_mark: This channel will get the Desk languages *{schedule.describe()}*."
    fallback = f"Digest subscribed: {schedule.describe()}. Next: {plain}."
    if replaced is not None and replaced.schedule != schedule.text():
        text += f"\nThis replaces the previous digest (`{escape(replaced.schedule)}`)."
        fallback += " Replaces the previous digest."
    elif replaced is not None:
        text += "\nThis channel already had this digest; it is unchanged."
    return _message(
        fallback,
        _section(text + f"\nNext digest: {when}."),
        _context(
            "The bot must be a member of this channel to post here (`/invite` it). "
            f"Stop with `{COMMAND} digest off`."
        ),
    )


def status_message(
    subscription: Subscription | None,
    schedule: Schedule | None,
    next_at: datetime | None,
    last: PostRecord | None,
    reader_zone: str | None,
) -> Message:
    if subscription is None:
        return _message(
            "This channel has no digest.",
            _section(
                "This channel has no Desk languages digest.\n"
                f"Subscribe with, for example, `{COMMAND} digest weekdays 09:00 Europe/Berlin`."
            ),
        )
    described = schedule.describe() if schedule else f"`{escape(subscription.schedule)}`"
    lines = [f":calendar: This channel gets the Desk languages *{described}*."]
    fallback = f"Digest: {schedule.describe() if schedule else subscription.schedule}."
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
        fallback += f" {subscription.hint}"
    blocks = [_section("\n".join(lines))]
    if last is not None:
        blocks.append(_context(_last_text(last)))
    return _message(fallback, *blocks)


def _last_text(last: PostRecord) -> str:
    if last.state is PostState.POSTED and last.posted_at is not None:
        plain = f"{datetime.fromtimestamp(last.posted_at, UTC):%Y-%m-%d %H:%M} UTC"
        return f"Last digest: posted <!date^{int(last.posted_at)}^{{date_short_pretty}} at {{time}}|{plain}>."
    if last.state is PostState.RELEASED:
        return f"Last attempt ({escape(last.period)}) failed and will be retried: {escape(last.error or '?')}"
    if last.state is PostState.SKIPPED:
        return f"Digest for {escape(last.period)} was skipped: {escape(last.error or '?')}"
    return f"Digest for {escape(last.period)} is being posted."


def stopped_message(previous: Subscription | None) -> Message:
    if previous is None:
        return _message(
            "This channel had no digest.", _section("This channel had no Desk languages digest; nothing to stop.")
        )
    return _message(
        "Digest stopped.",
        _section(f":wave: Digest stopped. This channel no longer gets `{escape(previous.schedule)}`."),
    )


def error_reply(problem: str) -> Message:
    """A bad schedule: what is wrong (it may quote what the user typed) and valid examples."""
    return _message(
        f"Not a digest schedule: {problem} Example: {COMMAND} {EXAMPLES[1]}",
        _section(f":x: {escape(problem)}\nNothing was changed."),
        _context(f"Examples: {examples_text()}"),
    )


def posted_notice(ok: bool, detail: str) -> Message:
    text = (":white_check_mark: " if ok else ":x: ") + escape(detail)
    return _message(detail, _section(text))
