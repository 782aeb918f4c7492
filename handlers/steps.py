"""Workflow Builder steps (`function_executed`): Get Desk languages, Check language readiness, and
Request a language change (posted for the app's admins; its end completes the step, see
bot/management/approvals.py `finish_step`).

The event is acknowledged at once; the step runs on a lazy listener (it reads Desk) and always
ends in `complete(outputs)` or `fail(message)`, never a traceback: an unknown app, Desk failing
with no last good list, anything unexpected — each fails with the words and hint the slash
command shows. Bolt hands the listener a client holding the execution's workflow token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Complete, Fail

from bot import metrics
from bot.config import UnknownApp
from bot.deps import BotDeps, DeskApp
from bot.desk import DeskError
from bot.slack import steps
from bot.terminal import plain_text

log = logging.getLogger(__name__)

StepRun = Callable[[DeskApp], dict[str, Any]]


def register(app: App, deps: BotDeps) -> None:
    def ack_now(ack: Ack) -> None:
        ack()

    def listener(step: str, run: StepRun) -> Callable[..., None]:
        def run_step(inputs: dict[str, Any], complete: Complete, fail: Fail) -> None:
            outcome = "failed"
            try:
                problem, outputs = _run(deps, inputs, run)
                if outputs is not None:
                    complete(outputs=outputs)
                    outcome = "completed"
                else:
                    fail(problem or "The step failed.")
            except Exception:  # the step must end: an apology, the details in the log
                log.exception("Unexpected failure in the workflow step %s", step)
                try:
                    fail("Something went wrong on the bot's side while running this step; the details are in the "
                         "bot's logs. Run the workflow again in a minute.")
                except Exception:  # noqa: BLE001  Slack unreachable: the step times out on its side
                    log.warning("the workflow step %s could not be failed either", step)
            finally:
                metrics.workflow_step(step, outcome)

        return run_step

    def request_change(inputs: dict[str, Any], body: dict[str, Any], fail: Fail) -> None:
        """Post the request; the step stays running until an admin decides or it expires."""
        outcome = "failed"
        try:
            problem = _request(deps, inputs, body)
            if problem is None:
                outcome = "requested"
            else:
                fail(plain_text(problem))
        except Exception:
            log.exception("Unexpected failure in the workflow step %s", steps.REQUEST_CHANGE)
            fail("Something went wrong on the bot's side while asking for this change; nothing was changed. "
                 "Run the workflow again in a minute.")
        finally:
            metrics.workflow_step(steps.REQUEST_CHANGE, outcome)

    app.function(steps.REQUEST_CHANGE, auto_acknowledge=False)(ack=ack_now, lazy=[request_change])
    app.function(steps.GET_LANGUAGES, auto_acknowledge=False)(
        ack=ack_now, lazy=[listener(steps.GET_LANGUAGES, lambda desk_app: steps.languages_outputs(
            desk_app.client.get_languages()))]
    )
    app.function(steps.CHECK_READINESS, auto_acknowledge=False)(
        ack=ack_now, lazy=[listener(steps.CHECK_READINESS, lambda desk_app: steps.readiness_outputs(
            desk_app.client.readiness()))]
    )


def _request(deps: BotDeps, inputs: dict[str, Any], body: dict[str, Any]) -> str | None:
    """Why the change cannot be asked (mrkdwn), or None when it is posted for the admins."""
    manager = deps.manager
    if manager is None:
        return "Changing languages is not set up in this bot (DATABASE_URL and DESK_ADMINS)."
    name = str(inputs.get("app") or "").strip() or None
    try:
        desk_app = deps.app(name)
    except UnknownApp as unknown:
        return str(unknown)
    execution = str(body.get("event", {}).get("function_execution_id") or "")
    requested_by = str(inputs.get("requested_by") or "")
    if not execution or not requested_by:
        return "The step needs requested_by (a user) to ask for a change."
    return manager.request_for_step(
        desk_app, str(inputs.get("action") or "").strip().lower(), str(inputs.get("tag") or ""), requested_by,
        execution=execution, reason=str(inputs.get("reason") or "").strip() or None,
        channel=str(inputs.get("channel") or "").strip() or None,
    )


def _run(deps: BotDeps, inputs: dict[str, Any], run: StepRun) -> tuple[str | None, dict[str, Any] | None]:
    """(None, the outputs), or (what failed and what to do, None)."""
    name = str(inputs.get("app") or "").strip() or None
    try:
        desk_app = deps.app(name)
    except UnknownApp as unknown:
        return str(unknown), None
    try:
        return None, run(desk_app)
    except DeskError as error:
        return f"Couldn't read {desk_app.render.title} from Desk: {error.meaning}. {error.hint}", None
