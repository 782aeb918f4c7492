"""The chatbot settings a person may change from Slack or the command line, and their checks.

Pure, no I/O: the five editable fields of a language's `RobotSettings` (fallback message,
welcome card on/off, its title, its questions, transfer to an agent), read from a modal's
submitted state, checked against the bot's limits, compared, described for the review and
the audit, and put back onto settings read from Desk just before a write (read-modify-write:
only the fields the person changed are replaced, everything else is sent as Desk has it).

Desk documents no length limits for these fields (docs/desk-api.md §12.2); the console allows
20 welcome card questions. The bot's own limits (§12.3) keep a chatbot's bubbles readable and
keep what a request stores small.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from bot.desk.readiness import RobotSettings

MAX_QUESTIONS = 20  # the console's limit for a welcome card (docs/desk-api.md §12.2)
FALLBACK_LIMIT = 1000  # characters; the bot's limits, not Desk's (§12.3)
TITLE_LIMIT = 100
QUESTION_LIMIT = 60

# block_id of each input in the modal, and the one action_id every input uses
FALLBACK_BLOCK = "fallback"
CARD_BLOCK = "welcome_card"
TITLE_BLOCK = "welcome_title"
QUESTIONS_BLOCK = "welcome_questions"
AGENT_BLOCK = "to_agent"
INPUT_ACTION = "value"
ON, OFF = "on", "off"


@dataclass(frozen=True)
class EditableSettings:
    """What a person may change of one language's chatbot settings."""

    fallback_message: str
    welcome_card_enabled: bool
    welcome_card_title: str
    welcome_card_questions: tuple[str, ...]
    to_agent_enabled: bool

    @classmethod
    def of(cls, settings: RobotSettings) -> EditableSettings:
        return cls(
            fallback_message=settings.fallback_message,
            welcome_card_enabled=settings.welcome_card_enabled,
            welcome_card_title=settings.welcome_card_title,
            welcome_card_questions=tuple(settings.welcome_card_questions),
            to_agent_enabled=settings.to_agent_enabled,
        )

    @classmethod
    def of_json_settings(cls, text: str) -> EditableSettings:
        """The editable part of a whole `RobotSettings` stored as JSON (a request's `read_values`)."""
        return cls.of(settings_from_json(text))

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> EditableSettings:
        data = json.loads(text)
        return cls(
            fallback_message=str(data["fallback_message"]),
            welcome_card_enabled=bool(data["welcome_card_enabled"]),
            welcome_card_title=str(data["welcome_card_title"]),
            welcome_card_questions=tuple(str(q) for q in data["welcome_card_questions"]),
            to_agent_enabled=bool(data["to_agent_enabled"]),
        )

    def digests(self) -> dict[str, str]:
        """A short digest of each field: what a modal carries to tell, without I/O, which changed."""
        return {name: field_digest(value) for name, value in asdict(self).items()}


def settings_to_json(settings: RobotSettings) -> str:
    return json.dumps(asdict(settings), ensure_ascii=False, separators=(",", ":"))


def settings_from_json(text: str) -> RobotSettings:
    data = json.loads(text)
    data["welcome_card_questions"] = tuple(data.get("welcome_card_questions") or ())
    return RobotSettings(**data)


FIELD_NAMES = tuple(f.name for f in fields(EditableSettings))
LABELS = {
    "fallback_message": "fallback message",
    "welcome_card_enabled": "welcome card",
    "welcome_card_title": "welcome card title",
    "welcome_card_questions": "welcome card questions",
    "to_agent_enabled": "transfer to an agent",
}


def field_digest(value: Any) -> str:
    if isinstance(value, tuple):
        value = list(value)
    return hashlib.sha256(json.dumps(value, ensure_ascii=False).encode()).hexdigest()[:12]


def changed_fields(before: EditableSettings, after: EditableSettings) -> list[str]:
    return [name for name in FIELD_NAMES if getattr(before, name) != getattr(after, name)]


def changed_since(digests: Mapping[str, str], after: EditableSettings) -> list[str]:
    """The fields of `after` whose value differs from the one `digests` were taken of."""
    now = after.digests()
    return [name for name in FIELD_NAMES if digests.get(name) != now[name]]


def onto(current: RobotSettings, wanted: EditableSettings, names: list[str]) -> RobotSettings:
    """`current` (read from Desk just now) with only the fields `names` replaced by `wanted`'s."""
    return replace(current, **{name: getattr(wanted, name) for name in names})


def shown(name: str, value: Any) -> str:
    """A field's value in words, plain text (the caller escapes it for mrkdwn)."""
    if isinstance(value, bool):
        return ON if value else OFF
    if isinstance(value, tuple):
        if not value:
            return "none"
        return " | ".join(value)
    return f'"{value}"' if value else "(empty)"


def change_lines(before: EditableSettings, after: EditableSettings) -> list[tuple[str, str, str]]:
    """(label, old, new) of each changed field, plain text."""
    return [
        (LABELS[name], shown(name, getattr(before, name)), shown(name, getattr(after, name)))
        for name in changed_fields(before, after)
    ]


def audit_detail(before: EditableSettings, after: EditableSettings, limit: int = 300) -> str:
    """Which fields changed, old → new, in at most `limit` characters (settings are not secrets)."""
    parts = []
    for label, old, new in change_lines(before, after):
        parts.append(f"{label}: {_cut(old, 60)} → {_cut(new, 60)}")
    text = "; ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- a submitted modal ---------------------------------------------------------------------------


def _input(values: Mapping[str, Any], block: str) -> Mapping[str, Any]:
    state = values.get(block)
    element = state.get(INPUT_ACTION) if isinstance(state, Mapping) else None
    return element if isinstance(element, Mapping) else {}


def _text(values: Mapping[str, Any], block: str) -> str:
    value = _input(values, block).get("value")
    return value.replace("\r\n", "\n").replace("\r", "\n").strip() if isinstance(value, str) else ""


def _switch(values: Mapping[str, Any], block: str) -> bool | None:
    option = _input(values, block).get("selected_option")
    value = option.get("value") if isinstance(option, Mapping) else None
    return {ON: True, OFF: False}.get(value) if isinstance(value, str) else None


def questions_of(text: str) -> tuple[tuple[str, ...], str | None]:
    """The welcome card's questions, one per line, and what is wrong with them (None: nothing)."""
    if not text.strip():
        return (), None
    lines = [line.strip() for line in text.strip().split("\n")]
    for number, line in enumerate(lines, 1):
        if not line:
            return (), f"Line {number} is empty: one question per line, without blank lines."
    if len(lines) > MAX_QUESTIONS:
        return (), f"{len(lines)} questions: a welcome card shows at most {MAX_QUESTIONS}, one per line."
    for number, line in enumerate(lines, 1):
        if len(line) > QUESTION_LIMIT:
            return (), f"Question {number} has {len(line)} characters; at most {QUESTION_LIMIT}."
    return tuple(lines), None


def _text_problems(fallback: str, title: str, questions_text: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """The questions, and what is wrong with the text fields, by block_id: the one set of checks
    the modal and the command line share."""
    errors: dict[str, str] = {}
    if len(fallback) > FALLBACK_LIMIT:
        errors[FALLBACK_BLOCK] = f"{len(fallback)} characters; at most {FALLBACK_LIMIT}."
    if "\n" in title:
        errors[TITLE_BLOCK] = "The title is one line."
    elif len(title) > TITLE_LIMIT:
        errors[TITLE_BLOCK] = f"{len(title)} characters; at most {TITLE_LIMIT}."
    questions, problem = questions_of(questions_text)
    if problem is not None:
        errors[QUESTIONS_BLOCK] = problem
    return questions, errors


def read_submission(values: Mapping[str, Any]) -> tuple[EditableSettings | None, dict[str, str]]:
    """The settings a modal's `view.state.values` asks for, or the errors to show under each input
    (`response_action: errors`, by block_id). A missing or forged input is an error, not a default."""
    fallback, title = _text(values, FALLBACK_BLOCK), _text(values, TITLE_BLOCK)
    questions, errors = _text_problems(fallback, title, _text(values, QUESTIONS_BLOCK))
    card, agent = _switch(values, CARD_BLOCK), _switch(values, AGENT_BLOCK)
    if card is None:
        errors[CARD_BLOCK] = "Choose on or off."
    if agent is None:
        errors[AGENT_BLOCK] = "Choose on or off."
    if errors or card is None or agent is None:
        return None, errors
    return EditableSettings(fallback, card, title, questions, agent), {}


BLOCK_LABELS = {FALLBACK_BLOCK: "The fallback message", TITLE_BLOCK: "The welcome card title",
                QUESTIONS_BLOCK: "The welcome card questions"}


def check_values(wanted: EditableSettings) -> str | None:
    """The modal's limits for settings given another way (the command line), as one line."""
    _, errors = _text_problems(
        wanted.fallback_message, wanted.welcome_card_title, "\n".join(wanted.welcome_card_questions)
    )
    return next((f"{BLOCK_LABELS[block]}: {problem}" for block, problem in errors.items()), None)


def outcome_of(read: EditableSettings, wanted: EditableSettings, now: EditableSettings) -> str:
    """What settings read after a write whose answer was lost show: `applied` when every field
    asked for is there, `not-seen` when they are as they were, else `unknown` (someone else, or a
    part of it)."""
    names = changed_fields(read, wanted)
    if all(getattr(now, name) == getattr(wanted, name) for name in names):
        return "applied"
    if all(getattr(now, name) == getattr(read, name) for name in names):
        return "not-seen"
    return "unknown"
