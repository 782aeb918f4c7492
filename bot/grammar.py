"""The `/desk-languages` grammar: text in, a `ParsedCommand` out. Pure, no I/O.

Case-insensitive and whitespace-tolerant. Anything that is not an option, however
long or strange (unicode, control characters), parses to `UNKNOWN` with the
closest valid option as a suggestion: unknown input gets help, never an error.
"""

from __future__ import annotations

import difflib
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

COMMAND = "/desk-languages"  # the slash command's name: the manifest, help texts and listeners use this
MAX_INPUT = 500  # longer text is cut before parsing; Slack allows more, nobody needs it


class Action(StrEnum):
    LIST = "list"
    SHARE = "share"
    REFRESH = "refresh"
    DEFAULT = "default"
    HELP = "help"
    DIGEST = "digest"
    UNKNOWN = "unknown"


OPTIONS = ("share", "refresh", "default", "help", "digest")


@dataclass(frozen=True)
class ParsedCommand:
    action: Action
    args: str = ""  # what follows the option (for `digest …`), cleaned
    raw: str = ""  # the cleaned input, for "unknown option" replies
    suggestion: str | None = None


def clean(text: str) -> str:
    """Drop control and format characters, fold whitespace, cap the length."""
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in text[: MAX_INPUT * 2]
        if ch.isspace() or unicodedata.category(ch)[0] != "C"
    )
    return " ".join(kept.split())[:MAX_INPUT]


def parse_command(text: str | None) -> ParsedCommand:
    cleaned = clean(text or "")
    if not cleaned:
        if text and text.strip():
            # Something was typed, only none of it printable: not the bare command.
            return ParsedCommand(Action.UNKNOWN)
        return ParsedCommand(Action.LIST)
    word, _, rest = cleaned.partition(" ")
    option = word.lower()
    if option in OPTIONS:
        action = Action(option)
        if action is Action.DIGEST:
            return ParsedCommand(action, args=rest.strip(), raw=cleaned)
        if not rest:
            return ParsedCommand(action, raw=cleaned)
        # "share please" is not an option: say so rather than silently ignore the rest.
        return ParsedCommand(Action.UNKNOWN, raw=cleaned, suggestion=option)
    close = difflib.get_close_matches(option, OPTIONS, n=1, cutoff=0.6)
    return ParsedCommand(Action.UNKNOWN, raw=cleaned, suggestion=close[0] if close else None)
