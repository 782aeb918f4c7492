"""The answer to "what are the languages?", shared by the command, the buttons and the home tab.

It turns a Desk result into a Block Kit message and never raises: a Desk failure
becomes the error message with its hint, and anything unexpected becomes a short
apology (logged with its traceback, redacted), never a raw exception.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bot.changecontrol.messages import declared_drift_line, plan_message
from bot.changecontrol.plan import AppPlan, read_plan
from bot.deps import BotDeps, DeskApp, fetch_all
from bot.desk import DeskError, LanguageList, ReadinessReport
from bot.desk.changes import diff
from bot.slack import blocks
from bot.slack.grammar import compare_pair

log = logging.getLogger(__name__)

UNEXPECTED = (
    "Something went wrong on the bot's side while fetching the Desk languages. "
    "Try again in a minute; if it keeps happening, tell the bot's maintainers (the details are in its logs)."
)


# What a Desk failure says could not be done ("Couldn't …"): the list's and the readiness check's.
# The Workflow Builder steps fail with the same words (handlers/steps.py).
LIST_FAILED = "fetch the Desk languages"
READINESS_FAILED = "check the Desk languages"


@dataclass(frozen=True)
class LanguagesReply:
    message: blocks.Message
    listed: bool  # False: an error or an apology, meant for the asker, never to be shared in a channel


def languages_reply(app: DeskApp, *, refresh: bool = False, default_only: bool = False) -> LanguagesReply:
    """The message for `app`'s languages (a stale list included), or the error to show instead."""
    try:
        result = app.client.get_languages(refresh=refresh)
    except DeskError as error:
        return LanguagesReply(blocks.error_message(error, app.render, action=LIST_FAILED), listed=False)
    except Exception:
        log.exception("Unexpected failure while fetching the Desk languages")
        return LanguagesReply(blocks.notice_message(UNEXPECTED), listed=False)
    if default_only:
        return LanguagesReply(blocks.default_message(result, app.render), listed=True)
    return LanguagesReply(blocks.languages_message(result, app.render), listed=True)


def apps_reply(apps: tuple[DeskApp, ...]) -> blocks.Message:
    try:
        return blocks.apps_message(fetch_all(apps))
    except Exception:
        log.exception("Unexpected failure while listing the Desk apps")
        return blocks.notice_message(UNEXPECTED)


def compare_reply(apps: tuple[DeskApp, ...], args: str) -> blocks.Message:
    """`compare [A] [B]`: the two apps' lists side by side, or why they cannot be compared."""
    pair = compare_pair(args, tuple(app.name for app in apps))
    if isinstance(pair, str):
        return blocks.notice_message(pair)
    by_name = {app.name: app for app in apps}
    try:
        first, second = fetch_all((by_name[pair[0]], by_name[pair[1]]))
    except Exception:
        log.exception("Unexpected failure while comparing Desk apps")
        return blocks.notice_message(UNEXPECTED)
    a, b = first[1], second[1]
    changes = diff(a, b) if isinstance(a, LanguageList) and isinstance(b, LanguageList) else None
    return blocks.compare_message(first, second, changes)


def readiness_reply(
    app: DeskApp, *, refresh: bool = False, fix: bool = False, deps: BotDeps | None = None
) -> blocks.Message:
    """Is each language ready? A failed check shows in its language's line; only a failure to
    read the list itself (nothing to check) becomes the error message. With `deps` holding a
    declared state, a line says whether the app is in sync with it."""
    try:
        report = app.client.readiness(refresh=refresh)
    except DeskError as error:
        return blocks.error_message(error, app.render, action=READINESS_FAILED)
    except Exception:
        log.exception("Unexpected failure while checking the Desk languages")
        return blocks.notice_message(UNEXPECTED)
    return blocks.readiness_message(report, app.render, fix=fix, drift=drift_of(deps, app, report))


def drift_of(deps: BotDeps | None, app: DeskApp, report: ReadinessReport) -> str | None:
    """The line on the declared state for `app`'s report (pure: no Desk call), or None without one."""
    return declared_drift_line(deps.declared if deps is not None else None, app.name, report)


def plan_reply(deps: BotDeps, app: str | None, *, refresh: bool = False) -> blocks.Message:
    """`[APP] plan`: what differs from the declared state, for one app or every app."""
    declared = deps.declared
    if declared is None:
        return blocks.notice_message(
            "No languages are declared for this bot: `plan` compares Desk with a `desk-languages.toml` "
            "that the bot's operators keep in Git (docs/change-control.md)."
        )
    chosen = (deps.app(app),) if app is not None else deps.apps

    def planned(desk_app: DeskApp) -> tuple[blocks.RenderContext, AppPlan]:
        return desk_app.render, read_plan(desk_app, declared.app(desk_app.name), refresh=refresh)

    try:  # each app's reads wait on its own rate limit: concurrently, one slow app costs its own time
        with ThreadPoolExecutor(max_workers=len(chosen), thread_name_prefix="plan") as pool:
            plans = list(pool.map(planned, chosen))
    except Exception:
        log.exception("Unexpected failure while planning")
        return blocks.notice_message(UNEXPECTED.replace("fetching the Desk languages", "comparing with the file"))
    return plan_message(plans, declared.path.name)
