"""The references the ack path is measured against, as WSGI apps served exactly like the bot.

- `bolt-default`: a bare Bolt app whose `/desk-languages` listener only calls `ack()`,
  with Bolt's defaults (`process_before_response=False`: the listener runs on Bolt's
  executor and the request thread polls for the ack every 10 ms);
- `bolt-pbr`: the same with `process_before_response=True` (the ack runs in the request thread);
- `plain`: the floor, no Bolt: verify the Slack signature (slack_sdk's
  `SignatureVerifier`), parse the form, answer an empty 200;
- `bot`: the bot itself, `bot.wsgi:application` (the composition root, jobs started), for
  serving it under gunicorn as it was served before it moved to granian.

`python -m bench.baselines NAME [--server granian|gunicorn]` serves one of them on $PORT,
reading the same variables as the bot (SLACK_SIGNING_SECRET; SLACK_BOT_TOKEN and
SLACK_API_URL for Bolt's auth.test, pointed at FakeSlack):
- `granian` (the default): with the bot's own `bot.serve.granian_options()` (same workers,
  blocking threads, header-read timeout), through granian's Python API as
  `bot.serve.serve_http` does (a module-level loader, `wrap_loader=False`);
- `gunicorn`: with `gunicorn_options()` below, the settings the bot ran under until it
  moved to granian (1 worker x 16 gthreads per WEB_CONCURRENCY).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from slack_bolt import Ack, App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from bot.config import Settings

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
COMMAND = "/desk-languages"


def _bolt(process_before_response: bool) -> WSGIApp:
    client = WebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"])
    app = App(
        client=client,
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        process_before_response=process_before_response,
    )

    @app.command(COMMAND)
    def only_ack(ack: Ack) -> None:
        ack()

    handler = SlackRequestHandler(app, path="/slack/events")

    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        result: Iterable[bytes] = handler(environ, start_response)
        return result

    return application


def bolt_default() -> WSGIApp:
    return _bolt(process_before_response=False)


def bolt_pbr() -> WSGIApp:
    return _bolt(process_before_response=True)


def plain() -> WSGIApp:
    verifier = SignatureVerifier(os.environ["SLACK_SIGNING_SECRET"])

    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/slack/events" or environ.get("REQUEST_METHOD") != "POST":
            start_response("404 Not Found", [("Content-Length", "0")])
            return [b""]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length).decode("utf-8")
        timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
        signature = environ.get("HTTP_X_SLACK_SIGNATURE", "")
        if not (timestamp.isdigit() and signature and verifier.is_valid(body, timestamp, signature)):
            start_response("401 Unauthorized", [("Content-Length", "0")])
            return [b""]
        form = parse_qs(body)
        status = "200 OK" if form.get("command") else "400 Bad Request"
        start_response(status, [("Content-Length", "0")])
        return [b""]

    return application


def the_bot() -> WSGIApp:
    from bot.wsgi import create_application

    return create_application()


APPS: dict[str, Callable[[], WSGIApp]] = {
    "bolt-default": bolt_default,
    "bolt-pbr": bolt_pbr,
    "plain": plain,
    "bot": the_bot,
}
SERVERS = ("granian", "gunicorn")
_APP_VARIABLE = "BENCH_REFERENCE_APP"  # which app the granian workers load (inherited or spawned alike)


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    """The gunicorn settings the bot ran under before it moved to granian: 1 worker x 16 gthreads."""
    from gunicorn.config import KNOWN_SETTINGS

    known = {setting.name for setting in KNOWN_SETTINGS}
    options = {
        "bind": f"{settings.host or '127.0.0.1'}:{settings.port}",
        "workers": settings.web_concurrency,
        "worker_class": "gthread",
        "threads": 16,
        "timeout": 30,
        "graceful_timeout": 25,
        "keepalive": 5,
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "control_socket_disable": True,  # gunicorn >= 25.1 would open one in $HOME
    }
    return {key: value for key, value in options.items() if key in known}


def serve_gunicorn(name: str) -> None:
    """Serve `APPS[name]` under gunicorn with the settings the bot used to run under."""
    from gunicorn.app.base import BaseApplication

    from bot.boot import load_configuration

    options = gunicorn_options(load_configuration())
    factory = APPS[name]

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)
            self.cfg.set("proc_name", f"bench-{name}")

        def load(self) -> WSGIApp:
            return factory()

    Server().run()


def load_reference() -> WSGIApp:
    """Runs in each granian worker: the app named by $BENCH_REFERENCE_APP. Module-level, as
    bot.serve.load_worker_app is, so it works whether workers are forked or spawned."""
    return APPS[os.environ[_APP_VARIABLE]]()


def serve_granian(name: str) -> None:
    """Serve `APPS[name]` under granian with the bot's own options, the way bot/serve.py does."""
    from granian import Granian
    from granian.constants import Interfaces

    from bot.boot import load_configuration
    from bot.serve import granian_options

    os.environ[_APP_VARIABLE] = name
    # The references are WSGI apps; the bot's own server speaks RSGI to the bot (bot/slack/edge.py).
    # With the 4 blocking threads the bot had under WSGI, so the references are served as before.
    options = {**granian_options(load_configuration()), "interface": Interfaces.WSGI, "blocking_threads": 4}
    server = Granian("bench.baselines:load_reference", **options)
    server.serve(target_loader=load_reference, wrap_loader=False)


def main(argv: list[str]) -> int:
    """`argv` as sys.argv: [program, NAME] or [program, NAME, "--server", SERVER]."""
    server = "granian"
    if len(argv) == 4 and argv[2] == "--server":
        server, argv = argv[3], argv[:2]
    if len(argv) != 2 or argv[1] not in APPS or server not in SERVERS:
        print(f"usage: python -m bench.baselines {{{','.join(APPS)}}} [--server {{{','.join(SERVERS)}}}]",
              file=sys.stderr)
        return 2
    (serve_granian if server == "granian" else serve_gunicorn)(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
