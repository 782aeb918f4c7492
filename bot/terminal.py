"""Terminal rendering: a language list as a table (`python -m bot languages`), one language's
chatbot settings (`python -m bot settings`), and Block Kit messages as plain text, so the demo
shows what a Slack user would see."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from bot.desk.models import LanguageList, language_name
from bot.desk.readiness import RobotSettings

_DATE = re.compile(r"<!date\^\d+\^[^|>]*\|([^>]*)>")
_LINK = re.compile(r"<([^|>]+)\|([^>]+)>")


def _plain(text: str) -> str:
    text = _DATE.sub(r"\1", text)
    text = _LINK.sub(r"\2", text)
    text = re.sub(r"(?<![\w`])\*([^*\n]+)\*(?![\w`])", r"\1", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def plain_text(mrkdwn: str) -> str:
    """A sentence written for Slack, for the terminal: no code, bold or italic marks (an underscore
    inside a word, as in DESK_IDENTIFIER, stays), dates as their UTC fallback, entities decoded."""
    text = re.sub(r"(?<!\w)([*_])([^*_\n]+)\1(?!\w)", r"\2", _DATE.sub(r"\1", mrkdwn).replace("`", ""))
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


ANSWER_MARKS = (":white_check_mark: ", ":x: ", ":grey_question: ", ":warning: ")


def unmarked(mrkdwn: str) -> str:
    """An answer written for Slack, for the terminal: `plain_text` without the emoji that mark
    its outcome (:white_check_mark:, :x:, :grey_question:, :warning:)."""
    for mark in ANSWER_MARKS:
        mrkdwn = mrkdwn.replace(mark, "")
    return plain_text(mrkdwn)


def message_to_text(message: dict[str, Any]) -> str:
    lines: list[str] = []
    for block in message.get("blocks") or []:
        kind = block.get("type")
        if kind == "header":
            title = block["text"]["text"]
            lines += [title, "=" * len(title)]
        elif kind == "section":
            if block.get("text"):
                lines.append(_plain(block["text"]["text"]))
            for field in block.get("fields") or []:
                lines.append(_plain(field["text"]))
        elif kind == "context":
            lines.append("  " + "  ".join(_plain(e.get("text", "")) for e in block.get("elements", [])))
        elif kind == "actions":
            lines.append("  ".join(f"[{e['text']['text']}]" for e in block.get("elements", []) if "text" in e))
        elif kind == "divider":
            lines.append("-" * 40)
        elif kind == "input":  # a modal's input, with what it holds
            lines.append(f"{block['label']['text']}: {_input_text(block.get('element') or {})}")
    if not lines:
        lines.append(_plain(message.get("text") or ""))
    return "\n".join(lines)


def _input_text(element: dict[str, Any]) -> str:
    if element.get("type") == "plain_text_input":
        value = str(element.get("initial_value") or "")
        return "\n    " + value.replace("\n", "\n    ") if "\n" in value else f"[{value}]"
    chosen = element.get("initial_option") or {}
    return f"({(chosen.get('text') or {}).get('text', 'none chosen')})"


def view_to_text(view: dict[str, Any]) -> str:
    """A modal as the terminal shows it: its title, its blocks, and its buttons."""
    title = (view.get("title") or {}).get("text", "")
    buttons = [f"[{(view.get(key) or {}).get('text')}]" for key in ("submit", "close") if view.get(key)]
    return f"+-- {title} --\n{message_to_text(view)}\n{'  '.join(buttons)}".rstrip()


def languages_table(lst: LanguageList) -> str:
    rows = [(lang.tag or "(none)", lang.name, "yes" if lang.is_default else "") for lang in lst.languages]
    header = ("TAG", "NAME", "DEFAULT")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in [header, *rows]]
    when = datetime.fromtimestamp(lst.fetched_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    count = len(lst.languages)
    lines.append("")
    lines.append(
        f"{count} language{'s' if count != 1 else ''}; default: "
        + (f"{lst.default.name} ({lst.default.tag or 'no tag'})" if lst.default else "none set")
        + f"; fetched {when}{' (cached)' if lst.from_cache else ''}"
    )
    return "\n".join(lines)


def _on_off(value: bool | None) -> str:
    return "(not returned)" if value is None else "on" if value else "off"


def _shown(value: object) -> str:
    return "(not returned)" if value is None else repr(value) if value == "" else str(value)


def settings_table(tag: str, settings: RobotSettings) -> str:
    """One language's settings: what people change first, then the values kept as Desk has them."""
    questions = settings.welcome_card_questions
    rows = [
        ("Fallback message", settings.fallback_message or "(none)"),
        ("Welcome card", _on_off(settings.welcome_card_enabled)),
        ("Welcome card title", settings.welcome_card_title or "(none)"),
        ("Welcome card questions", f"{len(questions)}" if questions else "(none)"),
        *((f"  {number}.", question) for number, question in enumerate(questions, start=1)),
        ("Transfer to an agent", _on_off(settings.to_agent_enabled)),
        ("Direct answer threshold", _shown(settings.direct_answering_reaches)),
        ("Chitchat", _on_off(settings.chitchat_enabled)),
        ("Chitchat threshold", _shown(settings.chitchat_reaches)),
        ("Clarify", _on_off(settings.clarify_enabled)),
        ("Clarify threshold", _shown(settings.clarify_reaches)),
        ("Clarify message", _shown(settings.clarify_message)),
        ("Clarify number", _shown(settings.clarify_number)),
    ]
    width = max(len(label) for label, _ in rows)
    heading = f"{language_name(tag)} ({tag})" if tag else language_name(tag)
    lines = [heading, "=" * len(heading)]
    for label, value in rows:
        # One line per setting: a multi-line message is shown with its line breaks as \n.
        lines.append(f"{label.ljust(width)}  {value.replace(chr(10), chr(92) + 'n')}".rstrip())
    return "\n".join(lines)
