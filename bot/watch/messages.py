"""What `watch` says: alerts (a change, an outage, a recovery), the replies to the command, and the
Home tab's lines of which channels watch an app or get its digests. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.desk.changes import Changes
from bot.desk.models import Language, language_name
from bot.slack.blocks import (
    Block,
    Message,
    RenderContext,
    channel_mention,
    context,
    escape,
    joined,
    language_label,
    mention,
    message_of,
    section,
    slack_date,
)


def title(render: RenderContext) -> str:
    """The app for people: its label, else its SDKAppID."""
    return render.label or f"SDKAppID {render.sdkappid}"


def _lang(lang: Language | None) -> str:
    return language_label(lang) if lang is not None else "none"


def _who(who: str | None) -> str:
    return f" by {mention(who)}" if who else ""


def change_lines(changes: Changes, who: dict[str, str | None]) -> list[str]:
    """One line per difference; `who` maps "add:TAG"/"remove:TAG" to who made it through the bot."""
    lines = [f"• Added {_lang(lang)}{_who(who.get(f'add:{lang.tag}'))}" for lang in changes.added]
    lines += [f"• Removed {_lang(lang)}{_who(who.get(f'remove:{lang.tag}'))}" for lang in changes.removed]
    if changes.default_changed:
        lines.append(f"• Default changed from {_lang(changes.default_before)} to {_lang(changes.default_after)}")
    return lines


def change_alert(
    render: RenderContext, changes: Changes, seen_at: float, who: dict[str, str | None], drift: str | None = None
) -> Message:
    """The alert of a list change; `drift`: the line saying the change made the app differ from its
    declared state, or brought it back in sync (mrkdwn, made safe by change control)."""
    name = escape(title(render))
    lines = change_lines(changes, who)
    text = f"The Desk languages of {name} changed: " + "; ".join(line.removeprefix("• ") for line in lines)
    return message_of(text, [
        section(f":bell: *The Desk chatbot languages of {name} changed*\n" + "\n".join(lines)),
        *([context(drift)] if drift else []),
        context(f"Seen by the bot {slack_date(seen_at)}"),
    ])


def settings_alert(render: RenderContext, tag: str, detail: str, who: str, result: str, at: float) -> Message:
    """A language's chatbot settings changed through the bot: which fields, by whom."""
    name = escape(title(render))
    language = f"{escape(language_name(tag))} (`{escape(tag)}`)"
    by = mention(who) if who[:1] in ("U", "W") else f"`{escape(who)}`"
    outcome = "" if result == "applied" else f" ({escape(result)}: Desk's answer was lost)"
    text = f"{language_name(tag)}: chatbot settings of {name} changed by {by}{outcome}: {escape(detail)}"
    return message_of(text[:300], [
        section(f":gear: *{language}: chatbot settings of {name} changed* by {by}{outcome}\n{escape(detail)}"),
        context(f"Through the bot, {slack_date(at)}"),
    ])


def _hhmm(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M UTC")


def outage_alert(render: RenderContext, since: float, code: str, hint: str) -> Message:
    name = escape(title(render))
    text = f"Cannot reach Desk for {name} since {_hhmm(since)} ({escape(code)}, {escape(hint)})"
    return message_of(text, [
        section(f":warning: *Cannot reach Desk for {name}* since {slack_date(since)} ({_hhmm(since)})\n"
                f"`{escape(code)}`: {escape(hint)}"),
        context("Change alerts resume when Desk answers again."),
    ])


def recovery_alert(render: RenderContext, since: float, now: float) -> Message:
    name = escape(title(render))
    text = f"Desk is reachable again for {name} (unreachable since {_hhmm(since)})"
    return message_of(text, [
        section(f":white_check_mark: *Desk is reachable again for {name}*"),
        context(f"Unreachable from {slack_date(since)} to {slack_date(now)}; any change meanwhile follows."),
    ])


def _cmd(app: str | None) -> str:
    return f"/desk-languages {escape(app)} watch" if app else "/desk-languages watch"


def watching_message(render: RenderContext, app: str | None) -> Message:
    name = escape(title(render))
    text = f"This channel will get an alert whenever the Desk languages of {name} change."
    return message_of(text, [section(f":eyes: {text}"), context(f"`{_cmd(app)} off` stops it.")])


def status_message(render: RenderContext, app: str | None, since: float, by: str | None,
                   disabled: str | None) -> Message:
    name = escape(title(render))
    who = f" by {mention(by)}" if by else ""
    text = f"This channel watches the Desk languages of {name} since {slack_date(since)}{who}."
    lines = [section(text)]
    if disabled:
        lines.append(context(f"Paused: {escape(disabled)}. Run `{_cmd(app)}` again after inviting the bot."))
    lines.append(context(f"`{_cmd(app)} off` stops it."))
    return message_of(text, lines)


def stopped_message(render: RenderContext, was: bool) -> Message:
    name = escape(title(render))
    if was:
        text = f"This channel no longer watches the Desk languages of {name}."
    else:
        text = f"This channel was not watching the Desk languages of {name}: nothing to stop."
    return message_of(text, [section(text)])


def usage_message(app: str | None) -> Message:
    text = f"Use `{_cmd(app)}` to get an alert here when the languages change, `{_cmd(app)} off` to stop."
    return message_of(text, [section(text)])


# --- the Home tab -------------------------------------------------------------------------------

MAX_CHANNELS = 10  # channels named per line on the Home tab; the rest are counted
SUBSCRIPTIONS_UNREADABLE = ":grey_question: Which channels watch this app or get its digests could not be read " \
    "(the database did not answer)."


@dataclass(frozen=True)
class SetUp:
    """A channel's watch or digest of one app, as the Home tab shows it (it belongs to the channel)."""

    channel_id: str
    created_by: str | None
    created_at: float
    detail: str = ""  # a digest's schedule; "paused" when it is


def _set_up(row: SetUp) -> str:
    detail = f" {escape(row.detail)}" if row.detail else ""
    who = f"set up by {mention(row.created_by)}, " if row.created_by else "set up "
    return f"{channel_mention(row.channel_id)}{detail} ({who}{slack_date(row.created_at)})"


def subscriptions_block(watching: Sequence[SetUp], digests: Sequence[SetUp]) -> Block:
    """One context block: the channels watching the app and those with its digest, each with who
    set it up and when; long lists are cut ("…and N more")."""
    if not watching and not digests:
        return context("No channel watches this app or gets its digest (`watch`, `digest` in a channel).")
    lines = []
    if watching:
        lines.append(":eyes: *Watching:* " + joined([_set_up(row) for row in watching], MAX_CHANNELS))
    if digests:
        lines.append(":calendar: *Digests:* " + joined([_set_up(row) for row in digests], MAX_CHANNELS))
    return context("\n".join(lines))
