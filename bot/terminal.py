"""Block Kit as terminal text, so the demo shows what a Slack user would see."""

from __future__ import annotations

import re
from typing import Any

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
