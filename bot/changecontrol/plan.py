"""The plan: what differs between an app's declared state and Desk, and what `apply` can change.

`plan_changes` is pure: from a `DeclaredApp` and a `ReadinessReport` (the list, each language's
live FAQ questions and chatbot settings, read from Desk just now) to the changes, in the order
`apply` makes them: removals, additions, settings, then what only the Tencent console can change
(`attention`: the default language, FAQ questions, a requirement no declared setting meets).
`read_plan` does the one read. `plan_document` is the JSON form (`plan --json`), whose schema
docs/change-control.md documents and tests/test_change_control.py pins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from bot.changecontrol.declared import SETTING_KEYS, DeclaredApp, DeclaredState
from bot.desk import DeskClient, DeskError
from bot.desk.languages import ADVANCED_EDITION_LANGUAGE_LIMIT
from bot.desk.models import language_name
from bot.desk.readiness import FaqCount, Flag, ReadinessReport, RobotSettings
from bot.management.settings_form import LABELS, EditableSettings, shown
from bot.slack.blocks import ConfiguredApp

PLAN_SCHEMA = 1  # the JSON form's version: raised only when a field changes meaning or goes away
FILE_KEY = {field_name: key for key, field_name in SETTING_KEYS.items()}  # EditableSettings field -> file key


class ChangeKind(StrEnum):
    REMOVE = "remove"
    ADD = "add"
    SETTINGS = "settings"
    ATTENTION = "attention"  # a difference only the Tencent console can resolve


@dataclass(frozen=True)
class PlannedChange:
    """One difference. `field` is the file's key of a settings change (`fallback_message`) or, for
    attention, what it is about (`default`, `faq`, `fallback`, `welcome_card`, `missing`).
    `applies`: `apply` makes it; otherwise `why_not` says why, in a phrase."""

    kind: ChangeKind
    tag: str
    field: str | None = None
    old: Any = None
    new: Any = None
    applies: bool = True
    why_not: str | None = None

    @property
    def text(self) -> str:
        """One line, plain text: `+ vi (Vietnamese)`, `~ fil fallback message: (empty) -> "…"`."""
        name = _named(self.tag)
        if self.kind is ChangeKind.ADD:
            line = f"+ {name}"
        elif self.kind is ChangeKind.REMOVE:
            line = f"- {name}"
        elif self.kind is ChangeKind.SETTINGS:
            label = LABELS[SETTING_KEYS[self.field or ""]]
            before = "(once it is added)" if self.old is None else _shown(self.field, self.old)
            line = f"~ {self.tag or '(default)'} {label}: {before} -> {_shown(self.field, self.new)}"
        elif self.field in ("fallback", "welcome_card"):  # the file can meet it, or the console
            noun = "a fallback message" if self.field == "fallback" else "a welcome card with questions"
            return f"! {self.why_not} (declare {noun} under [settings.{self.tag}], or set it in the console)"
        else:
            return f"! {self.why_not} (console only)"
        return line if self.applies else f"{line}: not by apply: {self.why_not}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "tag": self.tag,
            "field": self.field,
            "old": _json_value(self.old),
            "new": _json_value(self.new),
            "applies": self.applies,
            "why_not": self.why_not,
            "text": self.text,
        }


@dataclass(frozen=True)
class AppPlan:
    """One app's plan: its changes, or the Desk error that kept it from being read."""

    app: str
    sdkappid: int
    declared: bool
    changes: tuple[PlannedChange, ...] = ()
    error: DeskError | None = None
    checked_at: float | None = None

    @property
    def in_sync(self) -> bool:
        return self.error is None and not self.changes

    @property
    def applicable(self) -> tuple[PlannedChange, ...]:
        return tuple(change for change in self.changes if change.applies and change.kind is not ChangeKind.ATTENTION)

    def to_json(self) -> dict[str, Any]:
        error = self.error
        return {
            "app": self.app,
            "sdkappid": self.sdkappid,
            "declared": self.declared,
            "in_sync": self.in_sync,
            "checked_at": self.checked_at,
            "error": None if error is None else {"code": error.code, "meaning": error.meaning, "hint": error.hint},
            "changes": [change.to_json() for change in self.changes],
        }


def read_plan(app: ConfiguredApp[DeskClient], declared: DeclaredApp | None, *, refresh: bool = True) -> AppPlan:
    """The app's plan from Desk as it is now (the list and every language's checks, read again), or,
    with `refresh=False`, as the readiness report in the cache has it (Slack's `plan`)."""
    sdkappid = app.client.sdkappid
    if declared is None:
        return AppPlan(app.name, sdkappid, declared=False)
    try:
        report = app.client.readiness(refresh=refresh)
    except DeskError as error:
        return AppPlan(app.name, sdkappid, True, error=error)
    failed = report.error if report.stale else next((e for row in report.languages for e in row.errors), None)
    if failed is not None:  # a plan from a stale or partial read would be a guess
        return AppPlan(app.name, sdkappid, True, error=failed, checked_at=report.fetched_at)
    return AppPlan(app.name, sdkappid, True, plan_changes(declared, report), checked_at=report.fetched_at)


def plan_changes(declared: DeclaredApp, report: ReadinessReport) -> tuple[PlannedChange, ...]:
    """What differs, in apply's order. Every language of `report` must have been checked."""
    rows = {row.language.tag: row for row in report.languages}
    default = next((row.language.tag for row in report.languages if row.language.is_default), None)
    changes: list[PlannedChange] = []

    removable = 0
    for tag in rows:
        if tag in declared.languages:
            continue
        faq = rows[tag].faq
        if tag == default:
            why = f"{_named(tag)} is the default language: make another one the default in the console first"
            changes.append(PlannedChange(ChangeKind.REMOVE, tag, applies=False, why_not=why))
        elif isinstance(faq, FaqCount) and faq.standard > 0:
            why = (f"it has {_questions(faq.standard)}, and Desk removes no language that has questions: "
                   "remove or disable them in the console first")
            changes.append(PlannedChange(ChangeKind.REMOVE, tag, applies=False, why_not=why))
        else:
            removable += 1
            changes.append(PlannedChange(ChangeKind.REMOVE, tag))

    count = len(rows) - removable
    added: dict[str, bool] = {}
    for tag in declared.languages:
        if tag in rows:
            continue
        if tag == "":
            why = "the default language without a tag is made when the app is created, in the console"
            added[tag] = False
            changes.append(PlannedChange(ChangeKind.ADD, tag, applies=False, why_not=why))
        elif count >= ADVANCED_EDITION_LANGUAGE_LIMIT:
            why = (f"Desk allows {ADVANCED_EDITION_LANGUAGE_LIMIT} languages (the default counted), and a "
                   "language above stays until it can be removed")
            added[tag] = False
            changes.append(PlannedChange(ChangeKind.ADD, tag, applies=False, why_not=why))
        else:
            count += 1
            added[tag] = True
            changes.append(PlannedChange(ChangeKind.ADD, tag))

    after: dict[str, RobotSettings] = {}
    for tag, fields in declared.settings.items():
        if tag in rows:
            config = rows[tag].config
            assert isinstance(config, RobotSettings)  # read_plan refuses a partial report
            now = EditableSettings.of(config)
            wanted = replace(now, **fields)
            after[tag] = replace(config, **fields)
            for name in fields:
                if getattr(now, name) != getattr(wanted, name):
                    changes.append(PlannedChange(
                        ChangeKind.SETTINGS, tag, FILE_KEY[name], getattr(now, name), getattr(wanted, name)))
        else:
            waits = None if added.get(tag) else f"it waits for {_named(tag)} to be added"
            changes.extend(
                PlannedChange(ChangeKind.SETTINGS, tag, FILE_KEY[name], None, value, waits is None, waits)
                for name, value in fields.items()
            )

    if declared.default is not None and default is not None and declared.default != default:
        why = f"default is {default or '(no tag)'}, declared {declared.default or '(no tag)'}"
        changes.append(PlannedChange(ChangeKind.ATTENTION, declared.default, "default", default, declared.default,
                                     applies=False, why_not=why))
    if declared.rules is not None:
        changes.extend(_readiness_gaps(declared, report, after))
    return tuple(changes)


def _readiness_gaps(
    declared: DeclaredApp, report: ReadinessReport, after: dict[str, RobotSettings]
) -> list[PlannedChange]:
    """The declared requirements that languages staying in Desk miss even with the declared settings
    applied: the report judged again as it would read after `apply`."""
    assert declared.rules is not None
    rows = report.languages
    configs = [after.get(row.language.tag, row.config) for row in rows]
    judged = ReadinessReport.build([row.language for row in rows], [row.faq for row in rows], configs,
                                   report.fetched_at, declared.rules)
    gaps = []
    for row in judged.languages:
        if row.language.tag not in declared.languages:
            continue
        for flag, problem in zip(row.flags, row.problems(), strict=False):
            what = {Flag.NO_FAQ: "faq", Flag.FEW_FAQ: "faq", Flag.NO_FALLBACK: "fallback",
                    Flag.NO_WELCOME_CARD: "welcome_card"}[flag]
            gaps.append(PlannedChange(ChangeKind.ATTENTION, row.language.tag, what, applies=False,
                                      why_not=f"{row.language.tag or '(default)'} {problem}"))
    return gaps


def plan_document(state: DeclaredState, plans: Sequence[AppPlan]) -> dict[str, Any]:
    """`plan --json`: schema 1 (docs/change-control.md)."""
    return {
        "schema": PLAN_SCHEMA,
        "file": str(state.path),
        "in_sync": all(plan.in_sync for plan in plans),
        "apps": [plan.to_json() for plan in plans],
    }


def plan_text(state: DeclaredState, plans: Sequence[tuple[str, AppPlan]]) -> str:
    """`python -m bot plan` on a terminal: each app's plan under its heading."""
    lines = [f"Plan: Desk against {state.path}", ""]
    for heading, plan in plans:
        lines += plan_lines(plan, heading)
    return "\n".join(lines)


def plan_lines(plan: AppPlan, title: str) -> list[str]:
    """The plan of one app for a terminal: a heading, then one line per change."""
    if not plan.declared:
        return [f"{title}: not declared in the file; nothing to compare"]
    if plan.error is not None:
        return [f"{title}: Desk failed, so there is no plan: {plan.error}", f"  what to do: {plan.error.hint}"]
    if not plan.changes:
        return [f"{title}: in sync"]
    pending = len(plan.applicable)
    heading = f"{title}: {counted(len(plan.changes), 'difference')}, {pending} for apply"
    return [heading, *(f"  {change.text}" for change in plan.changes)]


def _named(tag: str) -> str:
    return f"{tag} ({language_name(tag)})" if tag else "(the default language without a tag)"


def _questions(count: int) -> str:
    return f"{count} live FAQ question{'' if count == 1 else 's'}"


def counted(number: int, noun: str) -> str:
    """"1 change", "3 changes"."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _shown(key: str | None, value: Any) -> str:
    text = shown(SETTING_KEYS.get(key or "", ""), value)
    return text if len(text) <= 80 else text[:79] + "…"


def _json_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
