"""The answer to "what are the languages?", shared by the command, the buttons and the home tab.

It turns a Desk result into a Block Kit message and never raises: a Desk failure
becomes the error message with its hint, and anything unexpected becomes a short
apology (logged with its traceback, redacted), never a raw exception.
"""

from __future__ import annotations

import logging
from typing import Any

from bot import blocks
from bot.app import BotDeps
from bot.desk import DeskError

log = logging.getLogger(__name__)

UNEXPECTED = (
    "Something went wrong on the bot's side while fetching the Desk languages. "
    "Try again in a minute; if it keeps happening, tell the bot's maintainers (the details are in its logs)."
)


def languages_answer(deps: BotDeps, *, refresh: bool = False, default_only: bool = False) -> dict[str, Any]:
    return languages_reply(deps, refresh=refresh, default_only=default_only)[0]


def languages_reply(deps: BotDeps, *, refresh: bool = False, default_only: bool = False) -> tuple[dict[str, Any], bool]:
    """The message, and whether it carries the list (a stale one included). False means an
    error or an apology: meant for the person who asked, never to be shared in a channel."""
    try:
        result = deps.desk.get_languages(refresh=refresh)
    except DeskError as error:
        return blocks.error_message(error, deps.render), False
    except Exception:
        log.exception("Unexpected failure while fetching the Desk languages")
        return blocks.notice_message(UNEXPECTED), False
    if default_only:
        return blocks.default_message(result, deps.render), True
    return blocks.languages_message(result, deps.render), True
