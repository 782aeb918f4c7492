"""The HTTP edge for HTTP mode: Slack at `POST /slack/events`, health at `GET /healthz`.

`/healthz` makes no Slack or Desk call: it answers from memory, so monitors can
poll it freely. Everything else goes to Bolt's WSGI adapter.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot import __version__
from bot.deps import BotDeps

StartResponse = Callable[..., Any]
Environ = dict[str, Any]
SLACK_PATH = "/slack/events"


class BotWSGI:
    def __init__(self, app: App, deps: BotDeps) -> None:
        self.app = app
        self.deps = deps
        self._slack = SlackRequestHandler(app, path=SLACK_PATH)

    def health(self) -> dict[str, Any]:
        report: dict[str, Any] = {"status": "ok", "version": __version__}
        states = [s for s in (app.client.shared_state_health() for app in self.deps.apps) if s is not None]
        if states:
            report["redis"] = "ok" if all(s == "ok" for s in states) else "degraded"
        return report

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz" and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            body = json.dumps(self.health()).encode()
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            start_response("200 OK", [*headers, ("Cache-Control", "no-store")])
            return [body]
        result: Iterable[bytes] = self._slack(environ, start_response)
        return result
