"""Whether each language of a chatbot is ready to serve: typed results of `list_faq` and
`desc_robot_config` (docs/desk-api.md §9), their tolerant parsers, and the report built from them.

Parsing follows §9.3: numbers may come as strings (`"0.8"`, `"12"`) and strings as numbers,
missing counts and lists are empty, unknown fields are ignored, and anything else is a
`bad-response` `DeskError`, never another exception. Everything here is pure:
`DeskClient.readiness()` does the I/O.

A language is flagged when it has no live FAQ question, fewer than half of the default
language's, no fallback message, or its welcome card off or empty: the built-in
`ReadinessRules`, which a team's declared state may replace (docs/change-control.md). A
language whose check failed carries that check's `DeskError` and is not counted as ready.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any, TypeVar

from bot.desk.cache import CacheKind
from bot.desk.errors import DeskError, error_from_dict, error_to_dict
from bot.desk.models import Language, as_int, bad_response, list_field, read_envelope

T = TypeVar("T")
DEFAULT_STATUS_TTL = 900.0  # seconds a report stays fresh unless the bot is told otherwise


@dataclass(frozen=True)
class FaqCount:
    """Live questions of one language: standard ones, and all (similar questions included)."""

    standard: int
    all: int


@dataclass(frozen=True)
class RobotSettings:
    """The chatbot's settings for one language (`desc_robot_config`, docs/desk-api.md §9.2, §12).

    The first five are what the bot reads for readiness and lets people change: the fallback
    message, the welcome card (on/off, title, questions) and transfer to an agent. The others
    (the thresholds, chitchat and clarify) are kept verbatim as Desk sent them, so that a write
    (`to_desk`) sends them back unchanged: the thresholds as their text (`"0.8"`, whether Desk
    sent a string or a number), None for a field Desk's answer left out (and the write leaves
    it out too: nothing can be sent back that was never read).
    """

    welcome_card_enabled: bool
    welcome_card_questions: tuple[str, ...]
    fallback_message: str
    to_agent_enabled: bool
    welcome_card_title: str = ""
    direct_answering_reaches: str | None = None
    chitchat_enabled: bool | None = None
    clarify_enabled: bool | None = None
    chitchat_reaches: str | None = None
    clarify_reaches: str | None = None
    clarify_message: str | None = None
    clarify_number: int | None = None

    def to_desk(self, tag: str) -> dict[str, Any]:
        """The body of `update_robot_config` for the language `tag` ("" for the default): every
        field, in the documented types (docs/desk-api.md §12.1), the kept ones as they were read."""
        body: dict[str, Any] = {
            "WelcomeCardQuestions": list(self.welcome_card_questions),
            "WelcomeCardEnable": int(self.welcome_card_enabled),
            "WelcomeCardTitle": self.welcome_card_title,
            "ToAgentEnable": int(self.to_agent_enabled),
        }
        kept: dict[str, Any] = {
            "DirectAnsweringReaches": self.direct_answering_reaches,
            "ChitchatEnable": None if self.chitchat_enabled is None else int(self.chitchat_enabled),
            "ChitchatReaches": self.chitchat_reaches,
            "ClarifyEnable": None if self.clarify_enabled is None else int(self.clarify_enabled),
            "ClarifyReaches": self.clarify_reaches,
            "ClarifyMessage": self.clarify_message,
            "ClarifyNumber": self.clarify_number,
        }
        body.update({name: value for name, value in kept.items() if value is not None})
        body["FallbackMsg"] = self.fallback_message
        body["LanguageTag"] = tag
        return body


# --- tolerant field readers ---------------------------------------------------------------------


def _count(body: dict[str, Any], name: str, missing: int) -> int:
    value = body.get(name)
    if value is None:
        return missing
    number = int(value) if isinstance(value, float) and value.is_integer() else as_int(value)
    if number is None or number < 0:
        raise bad_response(f"{name} is not a count")
    return number


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None or isinstance(value, bool):
        return bool(value)
    number = value if isinstance(value, float) else as_int(value)
    if number is None:
        raise bad_response(f"{name} is not 0 or 1")
    return number == 1


def _text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise bad_response(f"{name} is not a string")


def _threshold(body: dict[str, Any], name: str) -> str | None:
    """A similarity threshold, documented as a string but sent as a number too (§9.2): its text
    exactly as Desk wrote it ("0.80" stays "0.80"; a number becomes its shortest text), "" kept as
    "", None when missing. Anything but a finite number is a malformed answer."""
    value = body.get(name)
    if value is None or value == "":
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise bad_response(f"{name} is not a number")
    try:
        finite = math.isfinite(float(text))
    except ValueError:
        finite = False
    if not finite:
        raise bad_response(f"{name} is not a number")
    return text


def _kept_flag(body: dict[str, Any], name: str) -> bool | None:
    return None if body.get(name) is None else _flag(body, name)


def _kept_count(body: dict[str, Any], name: str) -> int | None:
    return None if body.get(name) is None else _count(body, name, 0)


def parse_faq_count(payload: Any) -> FaqCount:
    """A decoded `list_faq` answer as a `FaqCount`, or raise `DeskError`.

    A missing `AllQuestionCount` is taken to be the standard count (all counts include them).
    """
    body, _ = read_envelope(payload)
    standard = _count(body, "StandardQuestionCount", 0)
    return FaqCount(standard=standard, all=_count(body, "AllQuestionCount", standard))


def parse_robot_config(payload: Any) -> RobotSettings:
    """A decoded `desc_robot_config` answer as `RobotSettings`, or raise `DeskError`."""
    body, _ = read_envelope(payload)
    questions = list_field(body, "WelcomeCardQuestions")
    clarify_message = body.get("ClarifyMessage")
    return RobotSettings(
        welcome_card_enabled=_flag(body, "WelcomeCardEnable"),
        welcome_card_questions=tuple(_text(item, "a WelcomeCardQuestions item") for item in questions),
        fallback_message=_text(body.get("FallbackMsg"), "FallbackMsg"),
        to_agent_enabled=_flag(body, "ToAgentEnable"),
        welcome_card_title=_text(body.get("WelcomeCardTitle"), "WelcomeCardTitle"),
        direct_answering_reaches=_threshold(body, "DirectAnsweringReaches"),
        chitchat_enabled=_kept_flag(body, "ChitchatEnable"),
        clarify_enabled=_kept_flag(body, "ClarifyEnable"),
        chitchat_reaches=_threshold(body, "ChitchatReaches"),
        clarify_reaches=_threshold(body, "ClarifyReaches"),
        clarify_message=None if clarify_message is None else _text(clarify_message, "ClarifyMessage"),
        clarify_number=_kept_count(body, "ClarifyNumber"),
    )


# --- the report -----------------------------------------------------------------------------------


class Flag(StrEnum):
    NO_FAQ = "no-faq"  # no live standard question
    FEW_FAQ = "few-faq"  # fewer than half of the default language's live questions
    NO_FALLBACK = "no-fallback"  # no answer for when nothing matches
    NO_WELCOME_CARD = "no-welcome-card"  # welcome card off, or on without a question


@dataclass(frozen=True)
class ReadinessRules:
    """What a language needs to be ready, besides one live FAQ question: at least `faq_ratio` of
    the default language's live questions (0 turns the comparison off), a fallback message when
    `fallback`, a welcome card with a question when `welcome_card`."""

    faq_ratio: float = 0.5
    fallback: bool = True
    welcome_card: bool = True

    def few_faq(self, questions: int, default: int) -> bool:
        return questions < self.faq_ratio * default

    def ratio_text(self) -> str:
        """"half of", "80% of": how the requirement reads before "the default language's 40"."""
        return "half of" if self.faq_ratio == 0.5 else f"{self.faq_ratio * 100:g}% of"


BUILT_IN_RULES = ReadinessRules()


@dataclass(frozen=True)
class LanguageReadiness:
    """One language's checks: each a result or, when it failed, its `DeskError`."""

    language: Language
    faq: FaqCount | DeskError
    config: RobotSettings | DeskError
    flags: tuple[Flag, ...] = ()
    default_questions: int | None = None  # the default language's live questions, when known
    rules: ReadinessRules = BUILT_IN_RULES

    @property
    def checked(self) -> bool:
        return not isinstance(self.faq, DeskError) and not isinstance(self.config, DeskError)

    @property
    def ready(self) -> bool:
        return self.checked and not self.flags

    @property
    def errors(self) -> tuple[DeskError, ...]:
        return tuple(result for result in (self.faq, self.config) if isinstance(result, DeskError))

    def problems(self) -> list[str]:
        """What stands in the way, as phrases after the language's name ("has no FAQ questions")."""
        said: list[str] = []
        for flag in self.flags:
            if flag is Flag.NO_FAQ:
                said.append("has no FAQ questions")
            elif flag is Flag.FEW_FAQ and isinstance(self.faq, FaqCount):
                said.append(
                    f"has {self.faq.standard} FAQ questions, under {self.rules.ratio_text()} the default "
                    f"language's {self.default_questions}"
                )
            elif flag is Flag.NO_FALLBACK:
                said.append("has no fallback message")
            elif flag is Flag.NO_WELCOME_CARD and isinstance(self.config, RobotSettings):
                enabled = self.config.welcome_card_enabled
                said.append("has an empty welcome card" if enabled else "has the welcome card off")
        failed = [
            f"{what} check failed ({result.code})"
            for what, result in (("the FAQ", self.faq), ("the settings", self.config))
            if isinstance(result, DeskError)
        ]
        if failed:
            said.append("could not be checked: " + " and ".join(failed))
        return said


def _flags(
    faq: FaqCount | DeskError, config: RobotSettings | DeskError, default: int | None, rules: ReadinessRules
) -> tuple[Flag, ...]:
    flags: list[Flag] = []
    if isinstance(faq, FaqCount):
        if faq.standard == 0:
            flags.append(Flag.NO_FAQ)
        elif default is not None and rules.few_faq(faq.standard, default):
            flags.append(Flag.FEW_FAQ)
    if isinstance(config, RobotSettings):
        if rules.fallback and not config.fallback_message.strip():
            flags.append(Flag.NO_FALLBACK)
        card_empty = not config.welcome_card_enabled or not any(q.strip() for q in config.welcome_card_questions)
        if rules.welcome_card and card_empty:
            flags.append(Flag.NO_WELCOME_CARD)
    return tuple(flags)


@dataclass(frozen=True)
class ReadinessReport:
    """Every language of the chatbot (the default first), checked at `fetched_at` (Unix seconds).

    `stale`, `error` and `from_cache` mean what they mean on `LanguageList`.
    """

    languages: tuple[LanguageReadiness, ...]
    fetched_at: float
    stale: bool = False
    error: DeskError | None = field(default=None, compare=False)
    from_cache: bool = False

    @classmethod
    def build(
        cls,
        languages: Sequence[Language],
        faq: Sequence[FaqCount | DeskError],
        config: Sequence[RobotSettings | DeskError],
        fetched_at: float,
        rules: ReadinessRules = BUILT_IN_RULES,
    ) -> ReadinessReport:
        """The report for `languages` (in list order) and their checks, in the same order, judged
        by `rules`."""
        if not len(languages) == len(faq) == len(config):
            raise ValueError("one FAQ count and one config per language")
        rows = sorted(zip(languages, faq, config, strict=True), key=lambda row: not row[0].is_default)
        default = rows[0][1] if rows and rows[0][0].is_default else None
        default_count = default.standard if isinstance(default, FaqCount) else None
        return cls(
            tuple(
                LanguageReadiness(
                    language,
                    count,
                    settings,
                    _flags(count, settings, None if language.is_default else default_count, rules),
                    default_count,
                    rules,
                )
                for language, count, settings in rows
            ),
            fetched_at,
        )

    @property
    def ready(self) -> bool:
        return all(language.ready for language in self.languages)

    @property
    def ready_count(self) -> int:
        return sum(language.ready for language in self.languages)

    def summary(self) -> str:
        """E.g. "5 of 7 languages ready; Vietnamese has no FAQ questions, Filipino has no fallback message"."""
        total = len(self.languages)
        text = f"{self.ready_count} of {total} language{'' if total == 1 else 's'} ready"
        issues = [
            f"{language.language.name} {' and '.join(language.problems())}"
            for language in self.languages
            if not language.ready
        ]
        return "; ".join([text, ", ".join(issues)]) if issues else text

    def judged(self, rules: ReadinessRules) -> ReadinessReport:
        """The same checks judged by other rules (a team's declared requirements)."""
        if all(row.rules == rules for row in self.languages):
            return self
        rows = self.languages
        rebuilt = ReadinessReport.build(
            [row.language for row in rows], [row.faq for row in rows], [row.config for row in rows],
            self.fetched_at, rules,
        )
        return replace(rebuilt, stale=self.stale, error=self.error, from_cache=self.from_cache)

    def as_stale(self, error: DeskError) -> ReadinessReport:
        return replace(self, stale=True, error=error, from_cache=True)

    def as_cached(self) -> ReadinessReport:
        return replace(self, from_cache=True)

    def to_json(self) -> str:
        """The checks' results (flags are worked out again when read back), for a shared cache."""

        def result(value: FaqCount | RobotSettings | DeskError) -> dict[str, Any]:
            return {"error": error_to_dict(value)} if isinstance(value, DeskError) else {"value": asdict(value)}

        return json.dumps(
            {
                "fetched_at": self.fetched_at,
                "languages": [
                    {
                        "tag": row.language.tag,
                        "is_default": row.language.is_default,
                        "faq": result(row.faq),
                        "config": result(row.config),
                    }
                    for row in self.languages
                ],
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ReadinessReport:
        """What `to_json` wrote; raises ValueError, KeyError or TypeError on anything else."""
        data = json.loads(text)
        rows = data["languages"]
        languages = [Language.of(str(row["tag"]), bool(row["is_default"])) for row in rows]
        faq = [_stored(row["faq"], _faq_count) for row in rows]
        config = [_stored(row["config"], _robot_config) for row in rows]
        return cls.build(languages, faq, config, float(data["fetched_at"]))


def _faq_count(value: dict[str, Any]) -> FaqCount:
    return FaqCount(**value)


def _robot_config(value: dict[str, Any]) -> RobotSettings:
    fields = {**value, "welcome_card_questions": tuple(value["welcome_card_questions"])}
    for name in ("direct_answering_reaches", "chitchat_reaches", "clarify_reaches"):
        if isinstance(fields.get(name), int | float):  # a report an older version cached as a number
            fields[name] = str(fields[name])
    return RobotSettings(**fields)


def _stored(entry: dict[str, Any], build: Callable[[dict[str, Any]], T]) -> T | DeskError:
    if "error" in entry:
        error = error_from_dict(entry["error"])
        if error is None:
            raise ValueError("an error this version does not know")
        return error
    return build(entry["value"])


READINESS: CacheKind[ReadinessReport] = CacheKind("readiness", ReadinessReport.from_json)
