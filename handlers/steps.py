"""Workflow Builder steps (`function_executed`): Get Desk languages, Check language readiness, and
Request a language change (posted for the app's admins; its end completes the step, see
bot/management/approvals.py `finish_step`).

The event is acknowledged at once; the step runs on a lazy listener (it reads Desk) and always
ends in `complete(outputs)` or `fail(message)`, never a traceback: an unknown app, Desk failing
with no last good list, anything unexpected — each fails with the words and hint the slash
command shows. Bolt hands the listener a client holding the execution's workflow token.

Request a language change fails at once, with nothing stored, when the change cannot be asked;
once its request is stored, every end of it completes the step (a request that could not be
posted fails it there, once and recorded), so the listener does not fail it a second time.
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
from bot.management.service import StepAsk
from bot.slack import blocks, steps
from bot.terminal import plain_text
from handlers import answers

log = logging.getLogger(__name__)

StepRun = Callable[[DeskApp], dict[str, Any]]


APOLOGY = ("Something went wrong on the bot's side while running this step; the details are in the bot's logs. "
           "Run the workflow again in a minute.")
REQUEST_APOLOGY = ("Something went wrong on the bot's side while asking for this change; nothing was changed. "
                   "Run the workflow again in a minute.")


def register(app: App, deps: BotDeps) -> None:
    def ack_now(ack: Ack) -> None:
        ack()

    def listener(step: str, run: StepRun, failed_to: str) -> Callable[..., None]:
        def run_step(inputs: dict[str, Any], complete: Complete, fail: Fail) -> None:
            outcome = steps.FAILED
            try:
                problem, outputs = _run(deps, inputs, run, failed_to)
                if outputs is not None:
                    complete(outputs=outputs)
                    outcome = steps.COMPLETED
                else:
                    _fail(fail, step, problem or "The step failed.")
            except Exception:  # the step must end: an apology, the details in the log
                log.exception("Unexpected failure in the workflow step %s", step)
                _fail(fail, step, APOLOGY)
            finally:
                metrics.workflow_step(step, outcome)

        return run_step

    def request_change(inputs: dict[str, Any], body: dict[str, Any], fail: Fail) -> None:
        """Post the request; the step stays running until an admin decides or it expires."""
        outcome = steps.FAILED
        try:
            asked = _request(deps, inputs, body)
            if asked.posted:
                outcome = steps.REQUESTED
            elif asked.fail_with is not None:
                _fail(fail, steps.REQUEST_CHANGE, plain_text(asked.fail_with))
        except Exception:
            log.exception("Unexpected failure in the workflow step %s", steps.REQUEST_CHANGE)
            _fail(fail, steps.REQUEST_CHANGE, REQUEST_APOLOGY)
        finally:
            metrics.workflow_step(steps.REQUEST_CHANGE, outcome)

    app.function(steps.REQUEST_CHANGE, auto_acknowledge=False)(ack=ack_now, lazy=[request_change])
    app.function(steps.GET_LANGUAGES, auto_acknowledge=False)(
        ack=ack_now, lazy=[listener(steps.GET_LANGUAGES, lambda desk_app: steps.languages_outputs(
            desk_app.client.get_languages()), answers.LIST_FAILED)]
    )
    app.function(steps.CHECK_READINESS, auto_acknowledge=False)(
        ack=ack_now, lazy=[listener(steps.CHECK_READINESS, lambda desk_app: steps.readiness_outputs(
            desk_app.client.readiness()), answers.READINESS_FAILED)]
    )


def _fail(fail: Fail, step: str, message: str) -> None:
    """Fail the step; when Slack cannot be reached either, one line (no token: only the error's
    type) and the step times out on Slack's side."""
    try:
        fail(message)
    except Exception as error:  # noqa: BLE001  nothing more to do from here
        log.warning("the workflow step %s could not be failed either (%s)", step, type(error).__name__)


def _request(deps: BotDeps, inputs: dict[str, Any], body: dict[str, Any]) -> StepAsk:
    """Ask the app's admins for the change (posted, or why not; see `LanguageManager.request_for_step`)."""
    manager = deps.manager
    if manager is None:
        return StepAsk.refused("Changing languages is not set up in this bot (DATABASE_URL and DESK_ADMINS).")
    name = str(inputs.get("app") or "").strip() or None
    try:
        desk_app = deps.app(name)
    except UnknownApp as unknown:
        return StepAsk.refused(str(unknown))
    execution = str(body.get("event", {}).get("function_execution_id") or "")
    requested_by = str(inputs.get("requested_by") or "")
    if not execution or not requested_by:
        return StepAsk.refused("The step needs requested_by (a user) to ask for a change.")
    return manager.request_for_step(
        desk_app, str(inputs.get("action") or "").strip().lower(), str(inputs.get("tag") or ""), requested_by,
        execution=execution, reason=str(inputs.get("reason") or "").strip() or None,
        channel=str(inputs.get("channel") or "").strip() or None,
    )


def _run(
    deps: BotDeps, inputs: dict[str, Any], run: StepRun, failed_to: str
) -> tuple[str | None, dict[str, Any] | None]:
    """(None, the outputs), or (what failed and what to do: the slash command's words, None)."""
    name = str(inputs.get("app") or "").strip() or None
    try:
        desk_app = deps.app(name)
    except UnknownApp as unknown:
        return str(unknown), None
    try:
        return None, run(desk_app)
    except DeskError as error:
        return plain_text(blocks.error_message(error, desk_app.render, action=failed_to)["text"]), None
