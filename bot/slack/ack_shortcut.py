"""The acks the HTTP edge answers itself, before Bolt's dispatch: `/desk-languages` commands whose
answer this process already holds (help, an unknown option's help, a fresh list, a fresh `status`).

Why: such an answer is known before the request arrives, yet Bolt's dispatch of it (building the
request and its context, the middleware chain, matching listeners with their arguments injected)
cost about twice what a bare Bolt app spends acking with nothing (docs/benchmarks.md, ack path).
Here the edge, after its own signature and shape checks, parses the form once with Bolt's own
parser, asks the same functions Bolt's listeners ask (`handlers.commands.find_ack_answer` and
`ack_message`), and builds the answer with Bolt's own `Ack`, so status, headers and body are what
Bolt would have answered, byte for byte (tests/test_ack_shortcut.py runs both on the same requests).

What Bolt would have done besides, and why skipping it changes nothing for these requests:
- its signature check: the edge made the same check with the same secret just before;
- `ssl_check` bodies: never taken here (Bolt answers them);
- authorization: the token was verified at boot (auth.test), and a command's ack uses nothing of it;
- events, URL verification, workflow steps, Slack's retry headers: concern other request kinds,
  which go to Bolt, as does everything this module does not answer, and any failure here.
The request is counted, timed and given its log context by the same `RequestObserver` as Bolt's
dispatch. The answer rendered for a value the Desk client holds is kept (a small LRU) while the
client hands out that value, so an ack costs a dictionary lookup, not a render and a JSON dump.

WEB_ACK_SHORTCUT=0 sends every request through Bolt (for diagnosis); so does LOG_LEVEL=DEBUG,
where Bolt's own trace of each request is what one wants to read.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import quote, unquote

from cachetools import LRUCache
from slack_bolt import Ack
from slack_bolt.response import BoltResponse

from bot.deps import BotDeps
from bot.slack.grammar import COMMAND, parse_command
from handlers.commands import AckAnswer, ack_message, find_ack_answer
from handlers.requests import RequestObserver, describe_command

# A form body of our command holds this (URL-encoded as Slack sends it); anything without it is
# passed on untouched, for the price of one substring search.
COMMAND_FIELD = "command=" + quote(COMMAND, safe="")
KEPT_ANSWERS = 256  # rendered acks kept: a few per app and command kind; more would be waste


class AckShortcut:
    """Answers, in the edge, the commands Bolt's `answerable_in_ack` listener would answer."""

    def __init__(self, deps: BotDeps, observer: RequestObserver) -> None:
        self._deps = deps
        self._observer = observer
        self._kept: LRUCache[tuple[Any, ...], tuple[object, BoltResponse]] = LRUCache(KEPT_ANSWERS)
        self._lock = threading.Lock()
        self.answered = 0  # acks answered here (a diagnostic count: racing threads may miss one)

    def answer(self, text: str, content_type: str | None) -> BoltResponse | None:
        """The ack of a signed, well-formed request body, or None: Bolt is to dispatch it."""
        if COMMAND_FIELD not in text:
            return None
        try:
            return self._answer(text, content_type)
        except Exception:  # noqa: BLE001  Bolt then runs the same code and reports the failure its own way
            return None

    def _answer(self, text: str, content_type: str | None) -> BoltResponse | None:
        if content_type == "application/json" or text.startswith("{") or "payload" in text:
            return None  # Bolt reads such a body as JSON (`slack_bolt.request.internals.parse_body`)
        body = parse_form(text)
        if body.get("command") != COMMAND or "ssl_check" in body:
            return None
        parsed = parse_command(body.get("text"), self._deps.app_names)
        with self._observer.observing(describe_command(body, parsed, self._observer.default_app)) as answered:
            found = find_ack_answer(self._deps, body, parsed)
            if found is None:
                return None  # counted by Bolt's dispatch, which answers it
            response = self._response(found)
            answered(response.status)
        self.answered += 1
        return response

    def _response(self, found: AckAnswer) -> BoltResponse:
        if not found.reusable:
            return self._render(found)
        key = found.key
        with self._lock:
            kept = self._kept.get(key)
        if kept is not None and kept[0] is found.held:
            return kept[1]
        response = self._render(found)
        with self._lock:
            self._kept[key] = (found.held, response)
        return response

    def _render(self, found: AckAnswer) -> BoltResponse:
        message, response_type = ack_message(self._deps, found)
        # Bolt's own Ack, as the listener calls it: the same body and headers.
        return Ack()(**message, response_type=response_type)


def parse_form(text: str) -> dict[str, str]:
    """A form body as `dict(urllib.parse.parse_qsl(text, keep_blank_values=True))` reads it, which
    is how Bolt reads a form (the last of repeated names wins), at about a third of its cost: only
    what holds a `+` or a `%` is decoded (tests/test_ack_shortcut.py checks the two agree on any
    text). Slack's command forms have a dozen fields, and parse_qsl decoding each was a quarter
    of the ack's CPU."""
    form: dict[str, str] = {}
    for piece in text.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = unquote(name, errors="replace")
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = unquote(value, errors="replace")
        form[name] = value
    return form
