"""Apply: a plan's applicable changes made through the bot's one write path.

Removals first (room under the edition's limit), then additions, then settings (a language's
settings after it exists). Each language change goes through `LanguageManager.check` (the list read
again, FAQ questions counted) and `apply_from_cli` (one write, never repeated after a lost answer,
audited); each language's settings through `SettingsEditor` (read, compared, one write of every
declared field, audited). The first refusal or failure stops the run: what was applied and what
remains are said, and the next run plans again from Desk as it is then.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bot.changecontrol.declared import SETTING_KEYS
from bot.changecontrol.plan import AppPlan, ChangeKind, PlannedChange, counted
from bot.desk import DeskClient
from bot.management.service import NOT_RECORDED, LanguageManager
from bot.management.settings_editor import Loaded, SettingsEditor
from bot.management.settings_form import EditableSettings, change_lines
from bot.slack.blocks import ConfiguredApp
from bot.terminal import plain_text, unmarked


@dataclass
class ApplyResult:
    """What one app's apply did: `done` (one line per step), and, when it stopped, why and what
    remains."""

    done: list[str] = field(default_factory=list)
    stopped: str | None = None
    remaining: list[PlannedChange] = field(default_factory=list)


def apply_plan(
    app: ConfiguredApp[DeskClient], plan: AppPlan, manager: LanguageManager, editor: SettingsEditor, who: str,
    *, say: Callable[[str], None] = lambda line: None, approved_by: str | None = None,
) -> ApplyResult:
    """Make `plan`'s applicable changes to `app`, audited as `who` (`apply:<user>`), and the second
    admin `approved_by` (checked by the caller) on an app under two-person approval. `say` hears
    each step as it happens."""
    result = ApplyResult()
    steps: list[tuple[list[PlannedChange], Callable[[], str | None]]] = []
    for kind in (ChangeKind.REMOVE, ChangeKind.ADD):
        for change in plan.applicable:
            if change.kind is kind:
                steps.append(([change], _language_step(app, manager, who, change, result, approved_by)))
    by_tag: dict[str, list[PlannedChange]] = {}
    for change in plan.applicable:
        if change.kind is ChangeKind.SETTINGS:
            by_tag.setdefault(change.tag, []).append(change)
    for tag, changes in by_tag.items():
        steps.append((changes, _settings_step(app, editor, who, tag, changes, result, approved_by)))

    for index, (_, step) in enumerate(steps):
        made = len(result.done)
        problem = step()
        for line in result.done[made:]:
            say(f"  {line}")
        if problem is not None:
            result.stopped = problem
            result.remaining = [change for later, _ in steps[index + len(result.done) - made:] for change in later]
            say(f"  stopped: {problem}")
            break
    return result


def apply_plans(
    work: Sequence[tuple[str, ConfiguredApp[DeskClient], AppPlan]], manager: LanguageManager,
    editor: SettingsEditor, who: str, *, say: Callable[[str], None], approved_by: str | None = None,
) -> tuple[int, bool]:
    """Each (heading, app, plan) in turn, until one stops: (the steps made, whether it stopped).
    `say` hears the progress and, when it stopped, what remains of every app's plan."""
    made = 0
    for index, (heading, app, plan) in enumerate(work):
        say(f"\nApplying to {heading}:")
        result = apply_plan(app, plan, manager, editor, who, say=say, approved_by=approved_by)
        made += len(result.done)
        if result.stopped is not None:
            remaining = result.remaining + [change for _, _, later in work[index + 1:] for change in later.applicable]
            say(f"\nStopped after {counted(made, 'step')}; {counted(len(remaining), 'change')} remain:")
            say("\n".join(f"  {change.text}" for change in remaining))
            return made, True
    return made, False


def _language_step(
    app: ConfiguredApp[DeskClient], manager: LanguageManager, who: str, change: PlannedChange, result: ApplyResult,
    approved_by: str | None,
) -> Callable[[], str | None]:
    action = change.kind.value  # add | remove

    def step() -> str | None:
        tag, problem = manager.check(app, action, change.tag)
        if problem is not None or tag is None:
            return plain_text(problem or "nothing to change")
        written = manager.apply_from_cli(app, who, action, tag, approved_by=approved_by)
        outcome = written.outcome
        if not written.recorded:  # stop: every later write would go unrecorded too
            result.done.append(f"{change.text[:2]}{outcome.describe()}")
            return NOT_RECORDED + " Nothing more is written until it answers."
        if not outcome.applied:
            hint = f" What to do: {outcome.error.hint}" if outcome.error is not None else ""
            return outcome.describe() + hint
        result.done.append(f"{change.text[:2]}{outcome.describe()}")
        return None

    return step


def _settings_step(
    app: ConfiguredApp[DeskClient], editor: SettingsEditor, who: str, tag: str, changes: list[PlannedChange],
    result: ApplyResult, approved_by: str | None,
) -> Callable[[], str | None]:
    declared: dict[str, Any] = {SETTING_KEYS[change.field or ""]: change.new for change in changes}

    def step() -> str | None:
        loaded = editor.load(app, who, tag)
        if not isinstance(loaded, Loaded):
            return plain_text(loaded)
        read = EditableSettings.of(loaded.settings)
        wanted = replace(read, **declared)
        lines = change_lines(read, wanted)
        if not lines:
            result.done.append(f"~ {tag or '(default)'}: the settings are already as declared")
            return None
        proposed = editor.propose(app, loaded.request_id, who, wanted, check_admin=False)
        if isinstance(proposed, str):
            return plain_text(proposed)
        applied = editor.apply(app, loaded.request_id, who, check_admin=False, approved_by=approved_by)
        if applied.result != "applied":
            return unmarked(applied.text)
        result.done.append("~ " + " ".join(unmarked(applied.text).splitlines()))
        return None

    return step
