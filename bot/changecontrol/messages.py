"""Change control in Slack: the plan (`/desk-languages [APP] plan`) and the one line on drift that
`status` and the Home tab show. Pure, from plans to Block Kit; Desk's and the file's text (a
fallback message, a tag) is escaped, so a `<!channel>` in either is shown, never sent."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bot.changecontrol.declared import SETTING_KEYS, DeclaredApp, DeclaredState
from bot.changecontrol.plan import AppPlan, ChangeKind, PlannedChange, counted, plan_changes
from bot.desk.models import LanguageList
from bot.desk.readiness import ReadinessReport
from bot.management.settings_form import LABELS
from bot.slack.blocks import (
    MAX_BLOCKS,
    Message,
    RenderContext,
    code_text,
    context,
    escape,
    header,
    message_of,
    pack_lines,
    section,
    slack_date,
)

NAMED_IN_SUMMARY = 6  # changes named in a drift line; the rest are counted
APPLY_HINT = "To apply it: `python -m bot apply` (or `plan` in CI), where the file is reviewed."


def short_text(change: PlannedChange) -> str:
    """A change in a few words: `+ vi`, `- th`, `~ vi fallback message`, `! default`, `! ja FAQ`."""
    tag = change.tag or '""'
    if change.kind is ChangeKind.ADD:
        return f"+ {tag}"
    if change.kind is ChangeKind.REMOVE:
        return f"- {tag}"
    if change.kind is ChangeKind.SETTINGS:
        return f"~ {tag} {LABELS[SETTING_KEYS[change.field or '']]}"
    what = {"default": "default", "faq": "FAQ", "fallback": "fallback message"}.get(change.field or "", "welcome card")
    return "! default" if change.field == "default" else f"! {tag} {what}"


def drift_line(declared: DeclaredApp | None, report: ReadinessReport, file_name: str) -> str | None:
    """`status`'s and the Home tab's line on the declared state (mrkdwn), or None without one. Pure:
    the plan of the same report, no other Desk call."""
    if declared is None:
        return None
    named = code_text(file_name, 80)
    if report.stale or any(row.errors for row in report.languages):
        return f":grey_question: Not compared with {named}: a check failed (`plan` reads Desk again)."
    changes = plan_changes(declared, report)
    if not changes:
        return f":white_check_mark: In sync with {named}."
    shown = ", ".join(code_text(short_text(change)) for change in changes[:NAMED_IN_SUMMARY])
    more = f" and {len(changes) - NAMED_IN_SUMMARY} more" if len(changes) > NAMED_IN_SUMMARY else ""
    return f":warning: Differs from {named}: {shown}{more}. `plan` shows the details."


def declared_drift_line(state: DeclaredState | None, app: str, report: ReadinessReport) -> str | None:
    """`drift_line` for app `app` of the declared state (None without a file, or for an app it
    does not name): what `status` (Slack and the terminal), the Home tab and digests show."""
    if state is None:
        return None
    return drift_line(state.app(app), report, state.path.name)


def drift_note(state: DeclaredState) -> Callable[[str, str, str], str | None]:
    """What adding or removing a language from Slack does to the declared state, for its
    confirmation (mrkdwn): the next `apply` undoes a change the file does not declare."""
    named = code_text(state.path.name, 80)

    def note(app: str, action: str, tag: str) -> str | None:
        declared = state.app(app)
        if declared is None:
            return None
        if action == "add" and tag not in declared.languages:
            return f"Not in {named}: the next `apply` removes it. Declare it there too, to keep it."
        if action == "remove" and tag in declared.languages:
            return f"{named} declares it: the next `apply` adds it back. Remove it there too."
        return None

    return note


def list_drift(declared: DeclaredApp, listed: LanguageList) -> tuple[str, ...]:
    """What differs between the declared languages (and default) and a list, in short texts."""
    tags = [language.tag for language in listed.languages]
    drift = [f"+ {tag or chr(34) * 2}" for tag in declared.languages if tag not in tags]
    drift += [f"- {tag or chr(34) * 2}" for tag in tags if tag not in declared.languages]
    if declared.default is not None and listed.default is not None and listed.default.tag != declared.default:
        drift.append("! default")
    return tuple(drift)


def drift_alert_line(state: DeclaredState) -> Callable[[str, LanguageList, LanguageList], str | None]:
    """For a change alert: whether the change made the app's languages differ from the declared
    state (":warning: Now differs from …") or brought them back in sync; None when it changed
    neither. Alerts carry it, so it is posted exactly once per change, as they are; settings and
    readiness drift need more than the list, and are in `status` and `plan` instead."""
    named = code_text(state.path.name, 80)

    def line(app: str, before: LanguageList, after: LanguageList) -> str | None:
        declared = state.app(app)
        if declared is None:
            return None
        was, now = list_drift(declared, before), list_drift(declared, after)
        if bool(was) == bool(now):
            return None
        if not now:
            return f":white_check_mark: Back in sync with {named}."
        shown = ", ".join(code_text(text) for text in now[:NAMED_IN_SUMMARY])
        more = f" and {len(now) - NAMED_IN_SUMMARY} more" if len(now) > NAMED_IN_SUMMARY else ""
        return f":warning: Now differs from {named}: {shown}{more}. `plan` shows what `apply` would change."

    return line


def plan_message(plans: Sequence[tuple[RenderContext, AppPlan]], file_name: str) -> Message:
    """`/desk-languages [APP] plan`: each app's differences, one line each, as the terminal shows them."""
    blocks = [header("Plan: Desk against the declared state")]
    summaries = []
    tail = [context(f"Declared in {code_text(file_name, 80)} · {APPLY_HINT}")]
    for ctx, plan in plans:
        title = f"*{escape(ctx.title)}*"
        if not plan.declared:
            lines, summary = [f"{title}: not declared in the file; nothing to compare"], "not declared"
        elif plan.error is not None:
            lines = [f"{title}: :x: Desk failed, so there is no plan: {escape(plan.error.meaning)}. "
                     f"{escape(plan.error.hint)}"]
            summary = "Desk failed"
        elif plan.in_sync:
            lines, summary = [f"{title}: :white_check_mark: in sync"], "in sync"
        else:
            summary = f"{counted(len(plan.changes), 'difference')}, {len(plan.applicable)} for apply"
            when = f" (checked {slack_date(plan.checked_at)})" if plan.checked_at else ""
            lines = [f"{title}: :warning: {summary}{when}", *(_line(change) for change in plan.changes)]
        summaries.append(f"{escape(ctx.title)}: {summary}")
        room = MAX_BLOCKS - len(blocks) - len(tail) - 1
        texts, shown = pack_lines(lines, room)
        blocks += [section(text) for text in texts]
        if shown < len(lines):
            blocks.append(context(f"…and {len(lines) - shown} more (`python -m bot plan` lists them all)"))
            break
    return message_of("Plan: " + "; ".join(summaries), blocks + tail)


def _line(change: PlannedChange) -> str:
    """The terminal's line as mrkdwn: its mark as code, the rest escaped, the arrow drawn."""
    return f"`{change.text[:1]}`{escape(change.text[1:]).replace(' -&gt; ', ' → ')}"
