"""Terminal rendering: a language list as a table (`python -m bot languages`), and Block Kit
messages as plain text, so the demo shows what a Slack user would see."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from bot.desk.models import LanguageList

_DATE = re.compile(r"<!date\^\d+\^[^|>]*\|([^>]*)>")
_LINK = re.compile(r"<([^|>]+)\|([^>]+)>")


def _plain(text: str) -> str:
    text = _DATE.sub(r"\1", text)
    text = _LINK.sub(r"\2", text)
    text = re.sub(r"(?<![\w`])\*([^*\n]+)\*(?![\w`])", r"\1", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


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
    if not lines:
        lines.append(_plain(message.get("text") or ""))
    return "\n".join(lines)


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
