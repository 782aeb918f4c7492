"""The `/desk-languages` grammar: text in, a `ParsedCommand` out. Pure, no I/O.

`/desk-languages [APP] [option …]`: the app's name, when the bot serves several apps,
comes first; without it the command is about the default app. Case-insensitive and
whitespace-tolerant. Anything that is not an option, however long or strange
(unicode, control characters), parses to `UNKNOWN` with the closest valid option or
app name as a suggestion: unknown input gets help, never an error, and a misspelt
app name never falls through to the default app's answer.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Sequence
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
    APPS = "apps"
    COMPARE = "compare"
    ADD = "add"
    REMOVE = "remove"
    HISTORY = "history"
    STATUS = "status"
    WATCH = "watch"
    SETTINGS = "settings"
    PLAN = "plan"
    UNKNOWN = "unknown"


OPTIONS = (
    "share", "refresh", "default", "help", "digest", "apps", "compare", "add", "remove", "history", "status", "watch",
    "settings", "plan",
)
# the rest of the text is theirs
TAKES_ARGS = (Action.DIGEST, Action.COMPARE, Action.ADD, Action.REMOVE, Action.WATCH, Action.SETTINGS)


@dataclass(frozen=True)
class ParsedCommand:
    action: Action
    args: str = ""  # what follows the option (for `digest …`, `compare …`), cleaned
    raw: str = ""  # the cleaned input, for "unknown option" replies
    suggestion: str | None = None  # the closest option or app name
    app: str | None = None  # the app named first; None = the default app
    suggestion_is_app: bool = False


def clean(text: str) -> str:
    """Drop control and format characters, fold whitespace, cap the length."""
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in text[: MAX_INPUT * 2]
        if ch.isspace() or unicodedata.category(ch)[0] != "C"
    )
    return " ".join(kept.split())[:MAX_INPUT]


def parse_command(text: str | None, apps: Sequence[str] = ()) -> ParsedCommand:
    """Parse what follows `/desk-languages`. `apps` are the names a command may start with
    (empty when the bot serves one app: then no word is taken for an app name)."""
    cleaned = clean(text or "")
    if not cleaned:
        if text and text.strip():
            # Something was typed, only none of it printable: not the bare command.
            return ParsedCommand(Action.UNKNOWN)
        return ParsedCommand(Action.LIST)
    word, _, rest = cleaned.partition(" ")
    app: str | None = None
    if word.lower() in apps:
        app, cleaned = word.lower(), rest.strip()
        if not cleaned:
            return ParsedCommand(Action.LIST, raw=word, app=app)
        word, _, rest = cleaned.partition(" ")
    option = word.lower()
    if option in OPTIONS:
        action = Action(option)
        if action in (Action.STATUS, Action.PLAN) and rest.lower() in ("", "refresh"):  # `… refresh`: read again
            return ParsedCommand(action, args=rest.lower(), raw=cleaned, app=app)
        if action is Action.COMPARE and app is not None:  # `staging compare` = `compare staging`
            return ParsedCommand(action, args=f"{app} {rest}".strip(), raw=cleaned)
        if action in TAKES_ARGS:
            return ParsedCommand(action, args=rest.strip(), raw=cleaned, app=app)
        if not rest:
            return ParsedCommand(action, raw=cleaned, app=app)
        # "share please" is not an option: say so rather than silently ignore the rest.
        return ParsedCommand(Action.UNKNOWN, raw=cleaned, suggestion=option, app=app)
    # Not an option: the closest option, or the closest app name (only when no app came first).
    candidates = list(OPTIONS) + ([] if app is not None else list(apps))
    close = difflib.get_close_matches(option, candidates, n=1, cutoff=0.6)
    suggestion = close[0] if close else None
    is_app = suggestion is not None and suggestion not in OPTIONS
    return ParsedCommand(Action.UNKNOWN, raw=cleaned, suggestion=suggestion, app=app, suggestion_is_app=is_app)


def compare_pair(args: str, apps: Sequence[str]) -> tuple[str, str] | str:
    """The two apps `compare [A] [B]` is about, or why not (text for the user).

    With two names, those; with one, it against the default app (`apps[0]`); with none and
    exactly two apps, those two."""
    names = [name.lower() for name in args.split()]
    if len(apps) < 2:
        return "This bot serves one Desk app, so there is nothing to compare it with."
    if len(names) > 2:
        return "Compare takes at most two app names."
    for name in names:
        if name not in apps:
            close = difflib.get_close_matches(name, list(apps), n=1, cutoff=0.6)
            hint = f" Did you mean `{close[0]}`?" if close else ""
            return f"`{name[:20]}` is not one of this bot's apps.{hint}"
    if len(names) == 2:
        if names[0] == names[1]:
            return "Name two different apps to compare."
        return names[0], names[1]
    if len(names) == 1:
        if names[0] == apps[0]:
            return f"`{names[0]}` is the default app: name another app to compare it with."
        return apps[0], names[0]
    if len(apps) == 2:
        return apps[0], apps[1]
    return "This bot serves more than two apps: name the two to compare."
