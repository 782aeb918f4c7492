"""Slack Block Kit messages for the bot: pure functions from data to message dicts, no I/O.

Every function returns a `Message`, a plain dict `{"text": fallback, "blocks": [...]}` built
with `slack_sdk.models.blocks` and validated by their `to_dict()`. On top of what slack_sdk
checks, this module enforces the Block Kit limits it does not: at most 50 blocks, at most
2000 characters in any section text (counted in UTF-16 units, never fewer than Python's
count), and no empty text object. Text from outside the bot (language tags, Tencent's
ErrorInfo, what a user typed) is escaped, so a tag like `<!channel>` can never ping anyone.

Escaping happens twice. Each builder escapes the outside text it puts in a message (`escape`,
`clean_text`, `code_text`), in the blocks and in the fallback `text` alike. Then every mrkdwn text
object (`section`, `context`) and every fallback (`message_of`) goes through `neutralise`, which
keeps only the tokens the bot itself composes (`mention`, `channel_mention`, `slack_date`, user
groups) and escapes any other `<…>`: a broadcast (`<!channel>`, `<!here>`), a link
(`<https://…|…>`) or anything else in outside text that a builder forgot is shown, never live.

The caller owns the returned dict: each call hands out a fresh copy, even from the memo.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol, TypeVar

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.desk.changes import Changes
from bot.desk.errors import DeskError
from bot.desk.models import DEFAULT_TAG_NAME, Language, LanguageList
from bot.desk.readiness import FaqCount, Flag, LanguageReadiness, ReadinessReport, RobotSettings
from bot.slack.grammar import COMMAND

Message = dict[str, Any]
Block = dict[str, Any]

REFRESH_ACTION = "desk_languages_refresh"
SHARE_ACTION = "desk_languages_share"

MAX_BLOCKS = 50  # Slack's limit for a message; slack_sdk does not check it
TEXT_LIMIT = 2000  # section text and field limit used for every text here
MAX_LISTED = 100  # languages listed one per line; the rest are counted in "…and N more"
FALLBACK_LIMIT = 300  # the notification text: a summary, not the whole list
TAG_LIMIT = 64  # longer tags (never seen in Desk) are shortened when shown
NAME_LIMIT = 80
INFO_LIMIT = 500  # Tencent's ErrorInfo and transport details
USER_TEXT_LIMIT = 40

# C0/C1 controls, line and paragraph separators, and bidi overrides that could reorder the line.
_ODD = "\ufffd"  # shown in place of a control character in a tag, so the oddity stays visible
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class RenderContext:
    """How messages name the Desk app they are about."""

    sdkappid: int
    region: str  # label shown, e.g. "Singapore" or "sandbox (embedded emulator)"
    label: str | None = None  # the app's label or name; None when the bot serves one app only
    app: str | None = None  # the app's name, carried by buttons so a click acts on the same app

    @property
    def title(self) -> str:
        """The app as a reader knows it: its label, or its SDKAppID."""
        return self.label or f"SDKAppID {self.sdkappid}"


ClientT = TypeVar("ClientT", covariant=True)


class ConfiguredApp(Protocol[ClientT]):
    """One configured Desk app as a service sees it: its name, its Desk client (each service says
    which client methods it needs, so fakes fit) and how messages describe it. `bot.deps.DeskApp`
    is one, structurally. Read-only members, so frozen dataclasses fit."""

    @property
    def name(self) -> str: ...  # as configured (DESK_APPS) and as typed in `/desk-languages NAME …`

    @property
    def client(self) -> ClientT: ...

    @property
    def render(self) -> RenderContext: ...  # its `label` names the app in replies and messages


# --- text helpers ------------------------------------------------------------------------------


def escape(text: str) -> str:
    """Escape Slack's mrkdwn control characters so outside text cannot form links or mentions."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


# The only `<…>` tokens the bot composes: a user, a channel, a user group, a date.
_BOT_TOKEN = re.compile(r"<(?:@[UW][A-Z0-9]+|#[CGD][A-Z0-9]+|!subteam\^S[A-Z0-9]+|!date\^\d+\^[^<>|]*\|[^<>]*)>")
_ANGLED = re.compile(r"<[^<>]*>|[<>]")
_USER_ID = re.compile(r"[UW][A-Z0-9]+")
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]+")


def _neutral(match: re.Match[str]) -> str:
    token = match[0]
    return token if _BOT_TOKEN.fullmatch(token) else token.replace("<", "&lt;").replace(">", "&gt;")


def neutralise(text: str) -> str:
    """mrkdwn with every `<…>` the bot does not compose escaped: no broadcast, link or stray `<`
    from outside text stays live. Escaped text has no `<` left, so this never escapes twice."""
    return _ANGLED.sub(_neutral, text) if "<" in text or ">" in text else text


def mention(user: str) -> str:
    """A Slack user ID as a mention (`<@U…>`); anything else (the CLI's `cli:alice`) as text."""
    return f"<@{user}>" if _USER_ID.fullmatch(user) else escape(user)


def channel_mention(channel: str) -> str:
    """A Slack channel ID as a link to the channel (`<#C…>`); anything else as code."""
    return f"<#{channel}>" if _CHANNEL_ID.fullmatch(channel) else code_text(channel)


def slack_len(text: str) -> int:
    """Length as UTF-16 units: never less than `len()`, whichever way Slack counts."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clean_text(text: str, limit: int, control: str = "") -> str:
    """Outside text made safe to show: controls replaced, shortened, then escaped."""
    return escape(_shorten(_CONTROL.sub(control, text), limit))


def code_text(text: str, limit: int = TAG_LIMIT) -> str:
    """Outside text as inline code; a backtick inside would end the code span, so it is swapped."""
    shown = clean_text(text, limit, _ODD).replace("`", "ˋ")
    return f"`{shown}`" if shown.strip() else "_(blank)_"


def fit(text: str, limit: int = TEXT_LIMIT) -> str:
    """Last-resort bound on a text object: cut without splitting an entity or a `<…>` token."""
    if not text.strip():
        return "…"
    if slack_len(text) <= limit:
        return text
    target = limit - 1
    head = text[:target]
    while (excess := slack_len(head) - target) > 0:  # astral characters count twice
        head = head[:-excess]
    amp = head.rfind("&")
    if amp > head.rfind(";"):
        head = head[:amp]
    if head.rfind("<") > head.rfind(">"):
        head = head[: head.rfind("<")]
    return head + "…"


SHORT_DATE = "{date_short_pretty} at {time}"
LONG_DATE = "{date_long_pretty} at {time}"


def slack_date(ts: float, layout: str = SHORT_DATE, fallback: str | None = None) -> str:
    """A timestamp as Slack's `<!date>` token, shown in each reader's own time zone; clients
    that cannot render it show `fallback` (default: the time in UTC). The one builder of it."""
    if not math.isfinite(ts) or not 0 <= ts < 253402300800:  # up to year 9999
        return "an unknown time"
    seconds = int(ts)
    shown = escape(fallback.replace("|", "/")) if fallback is not None else _iso(seconds)
    return f"<!date^{seconds}^{layout}|{shown}>"


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


# --- block helpers ----------------------------------------------------------------------------


def _mrkdwn(text: str) -> MarkdownTextObject:
    # verbatim: Slack must not turn "@channel" or bare names in outside text into mentions
    return MarkdownTextObject(text=fit(neutralise(text)), verbatim=True)


def section(text: str) -> Block:
    return SectionBlock(text=_mrkdwn(text)).to_dict()


def context(text: str) -> Block:
    return ContextBlock(elements=[_mrkdwn(text)]).to_dict()


def header(text: str) -> Block:
    return HeaderBlock(text=PlainTextObject(text=text, emoji=True)).to_dict()


def message_of(text: str, blocks: list[Block]) -> Message:
    """The message: `text` is the fallback (notifications, screen readers), mrkdwn like the blocks,
    with outside parts escaped by the caller; any `<…>` the bot does not compose is escaped here."""
    if len(blocks) > MAX_BLOCKS:  # the builders below stay well inside; this is the guarantee
        blocks = [*blocks[: MAX_BLOCKS - 1], context("…(message shortened)")]
    return {"text": fit(neutralise(text), 3000) if text.strip() else "Desk languages bot", "blocks": blocks}


def _copy(message: Message) -> Message:
    """A fresh, independent copy of a memoised message, so callers may change theirs."""
    return {"text": message["text"], "blocks": json.loads(message["_frozen"])}


def _freeze(message: Message) -> Message:
    return {"text": message["text"], "_frozen": json.dumps(message["blocks"])}


@lru_cache(maxsize=64)
def _buttons_frozen(app: str | None) -> str:
    # The value carries the app's name, so a click acts on the app the message was about.
    buttons = ActionsBlock(
        elements=[
            ButtonElement(
                text=PlainTextObject(text=":arrows_counterclockwise: Refresh", emoji=True),
                action_id=REFRESH_ACTION,
                value=app or "refresh",
            ),
            ButtonElement(
                text=PlainTextObject(text=":mega: Share in channel", emoji=True),
                action_id=SHARE_ACTION,
                value=app or "share",
            ),
        ]
    ).to_dict()
    return json.dumps(buttons)


def _buttons(app: str | None) -> Block:
    block: Block = json.loads(_buttons_frozen(app))
    return block


# --- languages ------------------------------------------------------------------------------


def _name(lang: Language, limit: int) -> str:
    # an unknown tag's name repeats the tag ("Unrecognised tag (xx)"): show the tag only once
    name = "Unrecognised tag" if lang.name == f"Unrecognised tag ({lang.tag})" else lang.name
    return clean_text(name, limit) or "?"


def language_label(lang: Language, code_format: bool = True) -> str:
    """ "English (`en`)"; the empty tag's name already says "(no tag)", other names get the marker."""
    name = _name(lang, NAME_LIMIT)
    if lang.tag:
        tag = code_text(lang.tag) if code_format else clean_text(lang.tag, TAG_LIMIT, _ODD)
        return f"{name} ({tag})"
    return name if lang.name == DEFAULT_TAG_NAME else f"{name} (no tag)"


def _line(lang: Language) -> str:
    return f"• {language_label(lang)}{' :star: *default*' if lang.is_default else ''}"


def _count_line(lst: LanguageList) -> str:
    count = len(lst.languages)
    if count == 0:
        return "*The Desk chatbot has no languages configured.*"
    default = f"default: {language_label(lst.default)}" if lst.default else "no default language set"
    marked = sum(lang.is_default for lang in lst.languages)
    extra = f" ({marked} languages are marked default)" if marked > 1 else ""
    return f"*{_plural(count, 'language')}*, {default}{extra}"


def _about(lst: LanguageList, ctx: RenderContext) -> str:
    source = "from cache" if lst.from_cache else "just fetched"
    app = f"*{clean_text(ctx.label, NAME_LIMIT)}* · " if ctx.label else ""
    return (
        f"{app}SDKAppID {ctx.sdkappid} · {clean_text(ctx.region, NAME_LIMIT)} · "
        f"fetched {slack_date(lst.fetched_at)} · {source}"
    )


def _error_lines(err: DeskError) -> list[str]:
    lines = [f"*Error* {code_text(str(err.code))}: {escape(err.meaning)}"]
    if err.error_info and err.error_info != err.meaning:
        lines.append(f"*Tencent says:* {clean_text(err.error_info, INFO_LIMIT, ' ')}")
    if err.detail:
        lines.append(f"*Detail:* {clean_text(err.detail, INFO_LIMIT, ' ')}")
    lines.append(f"*What to do:* {escape(err.hint)}")
    return lines


def _stale_warning(lst: LanguageList) -> Block:
    err = lst.error
    what = "Desk answered with an error" if err and not err.is_transport else "Desk could not be reached"
    lines = [f":warning: *{what}*, showing the list from {slack_date(lst.fetched_at)}."]
    if err is not None:
        lines += _error_lines(err)
    return section("\n".join(lines))


def pack_lines(lines: list[str], max_sections: int) -> tuple[list[str], int]:
    """Join lines into as few section texts as fit; returns the texts and how many lines they hold."""
    texts: list[str] = []
    current: list[str] = []
    size = 0
    shown = 0
    for line in lines:
        length = slack_len(line)
        if current and size + 1 + length > TEXT_LIMIT:
            texts.append("\n".join(current))
            current, size = [], 0
        if len(texts) == max_sections:
            break
        size += length + (1 if current else 0)
        current.append(line)
        shown += 1
    if current and len(texts) < max_sections:
        texts.append("\n".join(current))
    return texts, shown


def _fallback(lst: LanguageList) -> str:
    if lst.stale:
        prefix = f"Desk chatbot languages (stale list from {_stale_iso(lst)}): "
    else:
        prefix = "Desk chatbot languages: "
    if not lst.languages:
        return prefix + "none configured"
    parts: list[str] = []
    size = len(prefix)
    for index, lang in enumerate(lst.languages):
        default = ", default" if lang.is_default else ""
        if lang.tag:
            part = f"{_name(lang, 40)} ({clean_text(lang.tag, 20, _ODD)}{default})"
        else:
            part = f"{_name(lang, 40)}{' (default)' if default else ''}"
        if size + len(part) + 2 > FALLBACK_LIMIT:
            parts.append(f"… and {len(lst.languages) - index} more")
            break
        parts.append(part)
        size += len(part) + 2
    return prefix + ", ".join(parts)


def _stale_iso(lst: LanguageList) -> str:
    ts = lst.fetched_at
    return _iso(int(ts)) if math.isfinite(ts) and 0 <= ts < 253402300800 else "an unknown time"


@lru_cache(maxsize=256)
def _languages_frozen(
    lst: LanguageList, ctx: RenderContext, buttons: bool, error_key: tuple[Any, ...] | None
) -> Message:
    # error_key: LanguageList's equality ignores `error`, but the stale warning shows it
    head = [header("Desk chatbot languages")]
    if lst.stale:
        head.append(_stale_warning(lst))
    head.append(section(_count_line(lst)))
    tail = [context(_about(lst, ctx))]
    if buttons:
        tail.append(_buttons(ctx.app))

    lines = [_line(lang) for lang in lst.languages[:MAX_LISTED]]
    room = MAX_BLOCKS - len(head) - len(tail) - 1  # one kept for "…and N more"
    texts, shown = pack_lines(lines, room)
    body = [section(text) for text in texts]
    hidden = len(lst.languages) - shown
    if hidden:
        body.append(context(f"…and {hidden} more"))
    return _freeze(message_of(_fallback(lst), head + body + tail))


def languages_message(lst: LanguageList, ctx: RenderContext, *, buttons: bool = True) -> Message:
    """The full list: header, stale warning if any, count, one line per language, context, buttons."""
    err = lst.error
    error_key = None if err is None else (err.code, err.error_info, err.detail)
    return _copy(_languages_frozen(lst, ctx, buttons, error_key))


def default_message(lst: LanguageList, ctx: RenderContext) -> Message:
    """Only the default language (with the stale warning when the list is stale)."""
    blocks = [_stale_warning(lst)] if lst.stale else []
    if lst.default is not None:
        text = f":star: The Desk chatbot's default language is *{language_label(lst.default)}*."
        fallback = f"Desk chatbot default language: {language_label(lst.default, code_format=False)}"
    elif lst.languages:
        count = _plural(len(lst.languages), "language")
        text = f"The Desk chatbot has no default language set ({count} configured)."
        fallback = "The Desk chatbot has no default language set."
    else:
        text = fallback = "The Desk chatbot has no languages configured, so no default either."
    blocks += [section(text), context(_about(lst, ctx))]
    return message_of(fallback, blocks)


# --- errors ------------------------------------------------------------------------------------


def error_message(
    err: DeskError, ctx: RenderContext, *, action: str = "fetch the Desk languages"
) -> Message:
    """What failed, Desk's code and meaning, Tencent's ErrorInfo if any, and what to do."""
    action = clean_text(action, NAME_LIMIT) or "reach Desk"
    app = f"*{clean_text(ctx.label, NAME_LIMIT)}* · " if ctx.label else ""
    about = f"{app}SDKAppID {ctx.sdkappid} · {clean_text(ctx.region, NAME_LIMIT)}"
    if err.request_id:
        about += f" · request ID {code_text(err.request_id)}"
    blocks = [
        section(f":x: *Couldn't {action}.*\n" + "\n".join(_error_lines(err))),
        context(about),
    ]
    code = clean_text(str(err.code), TAG_LIMIT)
    fallback = f"Couldn't {action}: error {code}, {escape(err.meaning)}. {escape(err.hint)}"
    return message_of(fallback, blocks)


# --- several apps --------------------------------------------------------------------------------

AppResult = tuple[RenderContext, LanguageList | DeskError]


def apps_message(rows: list[AppResult]) -> Message:
    """Every app: its label, region, SDKAppID, language count and default, or its error."""
    lines, failed = [], 0
    for ctx, result in rows[: MAX_BLOCKS - 4]:
        name = f"*{clean_text(ctx.title, NAME_LIMIT)}*"
        where = f"SDKAppID {ctx.sdkappid} · {clean_text(ctx.region, NAME_LIMIT)}"
        if ctx.app:
            where = f"`{clean_text(ctx.app, 20)}` · " + where
        if isinstance(result, DeskError):
            failed += 1
            lines.append(
                f":x: {name} ({where})\n{code_text(str(result.code))}: {escape(result.meaning)}. "
                f"{escape(result.hint)}"
            )
            continue
        default = language_label(result.default) if result.default else "_no default set_"
        stale = f"\n:warning: Desk failed; this is the list of {slack_date(result.fetched_at)}." if result.stale else ""
        lines.append(f"{name} ({where})\n{_plural(len(result.languages), 'language')} · default {default}{stale}")
    blocks = [header("Desk apps"), *[section(line) for line in lines]]
    summary = _plural(len(rows), "Desk app") + (f", {failed} failing" if failed else "")
    return message_of(f"{summary}.", blocks)


def compare_message(first: AppResult, second: AppResult, changes: Changes | None) -> Message:
    """What differs between two apps' lists: only in A, only in B, another default, or the same.
    `changes` is `diff(first's list, second's list)`, None when either side failed."""
    (a_ctx, a), (b_ctx, b) = first, second
    a_name, b_name = (f"*{clean_text(ctx.title, NAME_LIMIT)}*" for ctx in (a_ctx, b_ctx))
    head = header("Desk apps compared")
    if isinstance(a, DeskError) or isinstance(b, DeskError) or changes is None:
        failed = [(ctx, r) for ctx, r in (first, second) if isinstance(r, DeskError)]
        lines = [f":x: Couldn't fetch {clean_text(ctx.title, NAME_LIMIT)}'s languages, so there is nothing to "
                 f"compare yet.\n{code_text(str(r.code))}: {escape(r.meaning)}. {escape(r.hint)}"
                 for ctx, r in failed if isinstance(r, DeskError)]
        return message_of("Couldn't compare the apps: " + ", ".join(escape(c.title) for c, _ in failed) + " failed.",
                          [head, *[section(line) for line in lines]])
    if not changes.added and not changes.removed and not changes.default_changed:
        default = "same default" if a.default else "neither has a default"
        same = f"the same {_plural(len(a.languages), 'language')}, {default}"
        lines = [f":white_check_mark: {a_name} and {b_name} serve {same}."]
        fallback = f"{escape(a_ctx.title)} and {escape(b_ctx.title)}: {same}."
    else:
        lines, parts = [f"{a_name} → {b_name}"], []
        if changes.removed:
            lines.append(f"*Only in {clean_text(a_ctx.title, NAME_LIMIT)}:* {language_names(changes.removed)}")
            parts.append(f"{len(changes.removed)} only in {escape(a_ctx.title)}")
        if changes.added:
            lines.append(f"*Only in {clean_text(b_ctx.title, NAME_LIMIT)}:* {language_names(changes.added)}")
            parts.append(f"{len(changes.added)} only in {escape(b_ctx.title)}")
        if changes.default_changed:
            before = language_label(changes.default_before) if changes.default_before else "_none_"
            after = language_label(changes.default_after) if changes.default_after else "_none_"
            lines.append(f":star: *Different default:* {before} in {clean_text(a_ctx.title, NAME_LIMIT)}, "
                         f"{after} in {clean_text(b_ctx.title, NAME_LIMIT)}")
            parts.append("different default")
        fallback = f"{escape(a_ctx.title)} vs {escape(b_ctx.title)}: " + ", ".join(parts) + "."
    for ctx, lst in ((a_ctx, a), (b_ctx, b)):
        if lst.stale:
            code = code_text(str(lst.error.code)) if lst.error else "?"
            lines.append(
                f":warning: {clean_text(ctx.title, NAME_LIMIT)}'s side is the last good list, "
                f"of {slack_date(lst.fetched_at)}: Desk failed just now ({code})."
            )
    return message_of(fallback, [head, section("\n".join(lines)),
                                 context(f"{_about(a, a_ctx)}\n{_about(b, b_ctx)}")])


MAX_CHANGED = 20  # languages named per change line; the rest are counted


def language_names(langs: tuple[Language, ...]) -> str:
    return joined([language_label(lang) for lang in langs], MAX_CHANGED)


def joined(items: Sequence[str], limit: int) -> str:
    """The first `limit` items, comma-separated; the rest counted ("…and N more")."""
    hidden = len(items) - limit
    return ", ".join(items[:limit]) + (f" …and {hidden} more" if hidden > 0 else "")


# --- readiness -------------------------------------------------------------------------------------


def _readiness_line(row: LanguageReadiness) -> str:
    icon = ":white_check_mark:" if row.ready else (":warning:" if row.checked else ":x:")
    parts = []
    if isinstance(row.faq, FaqCount):
        parts.append(_plural(row.faq.standard, "FAQ question"))
    if isinstance(row.config, RobotSettings):
        card = row.config.welcome_card_questions
        parts.append(f"welcome card on, {_plural(len(card), 'question')}" if row.config.welcome_card_enabled
                     else "welcome card off")
        parts.append("fallback message set" if row.config.fallback_message.strip() else "no fallback message")
    line = f"{icon} {language_label(row.language)}{' :star:' if row.language.is_default else ''} · " + " · ".join(parts)
    problems = [p for p in row.problems() if "could not be checked" not in p]
    if problems:
        line += f"\n      _{escape(', '.join(problems))}_"
    for error in row.errors:
        line += f"\n      :x: {code_text(str(error.code))}: {escape(error.meaning)}. {escape(error.hint)}"
    return line


FIX_SETTINGS_ACTION = "desk_settings_fix"  # a Fix button on a flagged language: value "APP TAG" (APP may be "")
_FIXABLE = (Flag.NO_FALLBACK, Flag.NO_WELCOME_CARD)  # what the settings modal can fix


def _fix(row: LanguageReadiness, ctx: RenderContext, text: str = "Fix") -> ButtonElement:
    return ButtonElement(
        text=PlainTextObject(text=text[:75]), action_id=FIX_SETTINGS_ACTION,
        value=f"{ctx.app or ''} {row.language.tag}"[:150],
    )


def fixable(report: ReadinessReport) -> list[LanguageReadiness]:
    """The languages whose flags the settings modal can fix (the default language's too)."""
    return [row for row in report.languages[:MAX_LISTED]
            if row.language.tag and any(flag in _FIXABLE for flag in row.flags)]


def _fix_button(row: LanguageReadiness, ctx: RenderContext) -> Block:
    """A flagged language's line with a Fix button that opens the settings modal at it."""
    return SectionBlock(text=_mrkdwn(fit(_readiness_line(row))), accessory=_fix(row, ctx)).to_dict()


def fix_buttons(report: ReadinessReport, ctx: RenderContext) -> Block | None:
    """One Fix button per fixable language ("Fix Filipino"), for the Home tab; None when none is."""
    rows = fixable(report)[:25]  # an actions block holds 25 elements
    if not rows:
        return None
    return ActionsBlock(elements=[_fix(row, ctx, f"Fix {row.language.name or row.language.tag}")
                                  for row in rows]).to_dict()


def readiness_message(
    report: ReadinessReport, ctx: RenderContext, *, fix: bool = False, drift: str | None = None
) -> Message:
    """Is each language ready? The summary first, then one line per language (the default first).
    With `fix` (an admin asked), a language the settings modal can fix has its own line with a Fix
    button. `drift`: the line on the declared state (mrkdwn, made safe by its maker), before the
    report's source."""
    head = [header("Desk chatbot readiness")]
    if report.stale:
        code = code_text(str(report.error.code)) if report.error else "?"
        when = slack_date(report.fetched_at)
        head.append(context(f":warning: Desk failed just now ({code}); these are the checks of {when}."))
    summary = escape(report.summary())
    head.append(section(f"*{summary}*" if report.languages else "*The chatbot has no languages to check.*"))
    tail = [context(drift)] if drift else []
    tail.append(context(_about_report(report, ctx)))
    rows = report.languages[:MAX_LISTED]
    fixed = fixable(report) if fix else []
    lines = [_readiness_line(row) for row in rows if row not in fixed]
    texts, shown = pack_lines(lines, MAX_BLOCKS - len(head) - len(tail) - 1 - len(fixed))
    body = [section(text) for text in texts] + [_fix_button(row, ctx) for row in fixed]
    shown += len(fixed)
    hidden = len(report.languages) - shown
    if hidden:
        body.append(context(f"…and {hidden} more"))
    return message_of(f"Desk chatbot readiness: {summary}", head + body + tail)


def _about_report(report: ReadinessReport, ctx: RenderContext) -> str:
    app = f"*{clean_text(ctx.label, NAME_LIMIT)}* · " if ctx.label else ""
    source = "from cache" if report.from_cache else "just checked"
    return (
        f"{app}SDKAppID {ctx.sdkappid} · {clean_text(ctx.region, NAME_LIMIT)} · "
        f"checked {slack_date(report.fetched_at)} · {source}"
    )


PROGRESS = ":hourglass_flowing_sand:"  # an ack whose answer follows through the response_url


def checking_message(ctx: RenderContext) -> Message:
    """The ack of a `status` that has to ask Desk: what is being checked."""
    return notice_message(
        f"{PROGRESS} Checking the knowledge base and chatbot settings of every language of "
        f"{ctx.title}… the answer follows here."
    )


# --- help and notices --------------------------------------------------------------------------

_USAGE = (
    ("", "list the Desk chatbot's languages (only you see the reply)"),
    ("share", "post the list in this channel for everyone"),
    ("refresh", "fetch a fresh list from Desk instead of the cached one"),
    ("default", "show only the default language"),
    ("help", "show this help"),
)
_DIGEST_USAGE = (
    ("digest daily 09:00 [Area/City]", "post the list in this channel every day at 09:00"),
    ("digest weekdays 09:00 [tz]", "the same, Monday to Friday only"),
    ("digest weekly mon 09:00 [tz]", "once a week: `mon` … `sun`"),
    ("digest", "show this channel's digest subscription"),
    ("digest off", "stop this channel's digest"),
)


_WATCH_USAGE = (
    ("watch", "an alert in this channel whenever the languages change (again: since when, and who set it up)"),
    ("watch off", "stop this channel's change alerts"),
)
_STATUS_USAGE = (
    ("status", "is each language ready? FAQ questions, welcome card and fallback message per language"),
    ("status refresh", "the same, checked again now"),
    ("plan", "what differs from the languages declared in desk-languages.toml (`plan refresh`: read again)"),
)
_MANAGE_USAGE = (
    ("add TAG", "add a language to the chatbot (admins; asks to confirm)"),
    ("remove TAG", "remove a language (admins; asks to confirm)"),
    ("settings TAG", "change a language's fallback message and welcome card in a modal (admins; shows a review)"),
    ("history", "the last 20 language changes made through the bot"),
)
_APPS_USAGE = (
    ("apps", "every Desk app this bot serves, with its language count and default"),
    ("compare [APP] [APP]", "what differs between two apps' languages"),
)


@lru_cache(maxsize=8)
def _usage_frozen(command: str, apps: tuple[str, ...] = ()) -> Message:
    cmd = clean_text(command, NAME_LIMIT).replace("`", "ˋ") or COMMAND

    def rows(usage: tuple[tuple[str, str], ...]) -> str:
        return "\n".join(f"`{cmd}{' ' + sub if sub else ''}` – {what}" for sub, what in usage)

    several = [
        section(
            "*Several Desk apps*: put the app's name first, e.g. "
            f"`{cmd} {clean_text(apps[1], 20)} refresh`; without it, the default app "
            f"(`{clean_text(apps[0], 20)}`). Apps: " + ", ".join(f"`{clean_text(a, 20)}`" for a in apps[:20])
            + f"\n{rows(_APPS_USAGE)}"
        )
    ] if len(apps) > 1 else []
    blocks = [
        section(f"*Usage*\n{rows(_USAGE)}"),
        section(f"*Readiness*\n{rows(_STATUS_USAGE)}"),
        section(f"*Changing languages*\n{rows(_MANAGE_USAGE)}"),
        section(f"*Change alerts*\n{rows(_WATCH_USAGE)}"),
        *several,
        section(
            "*Channel digest*: the list posted here on a schedule. `[tz]` is a time zone "
            f"such as `Europe/Berlin`; without one the bot's default zone is used.\n{rows(_DIGEST_USAGE)}"
        ),
        context(f"Example: `{cmd} digest weekdays 09:00 Europe/Berlin`"),
    ]
    return _freeze(message_of(f"Usage: {cmd} [share | refresh | default | help | digest …]", blocks))


def help_message(command: str = COMMAND, apps: tuple[str, ...] = ()) -> Message:
    """Usage of every subcommand, one line each, and an example (with the apps, when several)."""
    return _copy(_usage_frozen(command, apps))


def unknown_option_message(
    text: str, suggestion: str | None, command: str = COMMAND, apps: tuple[str, ...] = ()
) -> Message:
    """ "Unknown option `…`", a "Did you mean" when there is a suggestion, then the usage
    (which lists the apps, when the bot serves several)."""
    shown = code_text(" ".join(_CONTROL.sub(" ", text).split()), USER_TEXT_LIMIT)
    head = f":grey_question: Unknown option {'or app ' if len(apps) > 1 else ''}{shown}."
    if suggestion:
        head += f" Did you mean {code_text(suggestion)}?"
    usage = _copy(_usage_frozen(command, apps))
    fallback = head.replace(":grey_question: ", "") + " " + usage["text"]
    return message_of(fallback, [section(head), *usage["blocks"]])


def notice_message(text: str) -> Message:
    """A one-section reply such as "Fetching…". `text` may use mrkdwn; `&`, `<`, `>` are escaped."""
    shown = fit(escape(text))
    return message_of(shown, [section(shown)])
