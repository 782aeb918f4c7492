"""Workflow Builder steps (Slack custom steps, `function_executed`): what each step takes and gives,
declared once here for the manifest (`manifest_functions`) and for the fake Slack that checks a
step's outputs against it; and the outputs themselves, pure functions from Desk's data.

Types are Slack's (docs/workflow-steps.md): `string`, `integer`, `boolean`,
`slack#/types/user_id`, `slack#/types/channel_id`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.desk import LanguageList, ReadinessReport

GET_LANGUAGES = "get_desk_languages"
CHECK_READINESS = "check_language_readiness"
REQUEST_CHANGE = "request_language_change"
# Request a language change's `outcome` output; an expired request fails the step instead.
OUTCOMES = ("applied", "not applied", "not seen", "rejected")
EXPIRED = "expired"
# workflow_steps_total's `outcome`: Get Desk languages and Check language readiness are counted
# once, COMPLETED or FAILED. Request a language change is counted when its listener returns,
# REQUESTED (posted for the admins) or FAILED (not asked, or its request could not be posted), and
# a posted request once more when its step ends: one of OUTCOMES, or EXPIRED.
COMPLETED, FAILED, REQUESTED = "completed", "failed", "requested"


@dataclass(frozen=True)
class StepParameter:
    name: str
    type: str
    title: str
    description: str
    required: bool = False

    def manifest(self) -> dict[str, Any]:
        return {"type": self.type, "title": self.title, "description": self.description,
                "is_required": self.required}


@dataclass(frozen=True)
class StepDefinition:
    callback_id: str
    title: str
    description: str
    inputs: tuple[StepParameter, ...]
    outputs: tuple[StepParameter, ...]
    demo_name: str  # `python -m bot demo step <demo_name>`

    def manifest(self) -> dict[str, Any]:
        def parameters(items: tuple[StepParameter, ...]) -> dict[str, Any]:
            return {"properties": {p.name: p.manifest() for p in items},
                    "required": [p.name for p in items if p.required]}

        return {"title": self.title, "description": self.description,
                "input_parameters": parameters(self.inputs), "output_parameters": parameters(self.outputs)}


APP_INPUT = StepParameter(
    "app", "string", "Desk app", "The app's name (DESK_APPS), e.g. prod; empty: the default app"
)

STEPS: tuple[StepDefinition, ...] = (
    StepDefinition(
        GET_LANGUAGES, "Get Desk languages", "The languages a Desk chatbot serves, with its default",
        (APP_INPUT,),
        (
            StepParameter("languages", "string", "Language tags", "The tags, comma-separated, default first", True),
            StepParameter("language_names", "string", "Language names", "e.g. English (default), Chinese", True),
            StepParameter("default_language", "string", "Default language", "The default's tag", True),
            StepParameter("count", "integer", "Number of languages", "How many languages the chatbot serves", True),
            StepParameter("fetched_at", "string", "Fetched at", "When Desk said so (ISO 8601, UTC)", True),
            StepParameter("stale", "boolean", "Stale", "True when Desk failed and this is the last good list",
                          True),
        ),
        "get-languages",
    ),
    StepDefinition(
        CHECK_READINESS, "Check language readiness",
        "Whether each language is ready: FAQ questions, fallback message, welcome card",
        (APP_INPUT,),
        (
            StepParameter("ready_count", "integer", "Ready", "How many languages are ready", True),
            StepParameter("language_count", "integer", "Languages", "How many languages were checked", True),
            StepParameter("summary", "string", "Summary", "The sentence status starts with", True),
            StepParameter("not_ready", "string", "Not ready", "The tags of the languages not ready, comma-separated",
                          True),
            StepParameter("all_ready", "boolean", "All ready", "True when every language is ready", True),
        ),
        "check-readiness",
    ),
    StepDefinition(
        REQUEST_CHANGE, "Request a language change",
        "Ask the app's admins to add or remove a language; the step ends when one decides",
        (
            APP_INPUT,
            StepParameter("action", "string", "Action", "add or remove", True),
            StepParameter("tag", "string", "Language tag", "e.g. vi, th, fil", True),
            StepParameter("requested_by", "slack#/types/user_id", "Requested by", "Who asks", True),
            StepParameter("reason", "string", "Reason", "Why, shown to the admins"),
            StepParameter("channel", "slack#/types/channel_id", "Channel",
                          "Where the admins decide; empty: the bot's audit channel"),
        ),
        (
            StepParameter("outcome", "string", "Outcome", "applied, not applied, not seen, rejected", True),
            StepParameter("message", "string", "Message", "What happened, in a sentence", True),
        ),
        "request-change",
    ),
)
STEPS_BY_ID = {step.callback_id: step for step in STEPS}


def manifest_functions() -> dict[str, Any]:
    """The manifest's `functions` section."""
    return {step.callback_id: step.manifest() for step in STEPS}


def languages_outputs(listed: LanguageList) -> dict[str, Any]:
    """Get Desk languages' outputs (the default first)."""
    ordered = sorted(listed.languages, key=lambda language: not language.is_default)
    return {
        "languages": ",".join(language.tag for language in ordered),
        "language_names": ", ".join(
            f"{language.name} (default)" if language.is_default else language.name for language in ordered
        ),
        "default_language": listed.default.tag if listed.default is not None else "",
        "count": len(ordered),
        "fetched_at": _iso(listed.fetched_at),
        "stale": bool(listed.stale),
    }


def readiness_outputs(report: ReadinessReport) -> dict[str, Any]:
    """Check language readiness' outputs."""
    return {
        "ready_count": report.ready_count,
        "language_count": len(report.languages),
        "summary": report.summary(),
        "not_ready": ",".join(row.language.tag for row in report.languages if not row.ready),
        "all_ready": report.ready,
    }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
