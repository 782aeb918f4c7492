"""The WSGI application for HTTP mode: Slack at `POST /slack/events`, health at `GET /healthz`.

gunicorn loads `bot.wsgi:application`, which builds the app from the environment
when a worker imports it. `/healthz` makes no Slack or Desk call: it answers
from memory, so monitors can poll it freely.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot import __version__
from bot.app import BotDeps

StartResponse = Callable[..., Any]
Environ = dict[str, Any]


class BotWSGI:
    def __init__(self, app: App, deps: BotDeps) -> None:
        self.app = app
        self.deps = deps
        self._slack = SlackRequestHandler(app, path="/slack/events")

    def health(self) -> dict[str, Any]:
        report: dict[str, Any] = {"status": "ok", "version": __version__}
        redis = self.deps.desk.shared_state_health()
        if redis is not None:
            report["redis"] = redis
        return report

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz" and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            body = json.dumps(self.health()).encode()
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            start_response("200 OK", [*headers, ("Cache-Control", "no-store")])
            return [body]
        result: Iterable[bytes] = self._slack(environ, start_response)
        return result


def create_application() -> BotWSGI:
    """Build everything from the environment (what a gunicorn worker does on import)."""
    from bot.app import build_app, build_deps, build_web_client, start_background_jobs
    from bot.cli import settings_from_environment

    settings = settings_from_environment()
    client = build_web_client(settings)
    settings.require_slack_http()
    deps = build_deps(settings, client)
    app = build_app(settings, client=client, deps=deps)
    start_background_jobs(deps)
    return BotWSGI(app, deps)


def __getattr__(name: str) -> Any:
    # `application` is built on first access, not at import, so tests can import this module.
    if name == "application":
        built = create_application()
        globals()["application"] = built
        return built
    raise AttributeError(name)
