"""Running the bot: HTTP mode under gunicorn (`serve`) or Socket Mode (`socket`).

Both check the configuration and the Slack token before anything starts, so a
deployment with a missing variable fails in seconds with one line naming it.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from bot.boot import build_bot, check_slack_token
from bot.config import Settings

log = logging.getLogger(__name__)
THREADS = 16  # per worker; acks are ~1 ms, lazy work runs in the app's own executor


def bind_address(port: int, host: str | None = None) -> str:
    """`HOST:PORT` when HOST is set (e.g. 127.0.0.1 to serve only this machine); otherwise
    `[::]:PORT` where IPv6 works (Heroku Fir requires it; it also accepts IPv4), else 0.0.0.0."""
    if host:
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if socket.has_ipv6:
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
                probe.bind(("::", 0))
            return f"[::]:{port}"
        except OSError:
            pass
    return f"0.0.0.0:{port}"


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    """gunicorn's settings for this deployment, leaving out any this gunicorn does not know."""
    from gunicorn.config import KNOWN_SETTINGS

    known = {setting.name for setting in KNOWN_SETTINGS}
    options = {
        "bind": bind_address(settings.port, settings.host),
        "workers": settings.web_concurrency,
        "worker_class": "gthread",
        "threads": THREADS,
        "timeout": 30,
        "graceful_timeout": 25,  # platforms send SIGKILL about 30 s after SIGTERM
        "keepalive": 5,
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "proc_name": "desk-languages-bot",
        # gunicorn >= 25.1 otherwise opens a management socket at a fixed path in $HOME, which
        # the bot never uses and which every other instance on the host takes over.
        "control_socket_disable": True,
    }
    return {key: value for key, value in options.items() if key in known}


def serve_http(settings: Settings) -> None:
    from gunicorn.app.base import BaseApplication

    settings.require_slack_http()
    # The parent process builds no Bolt app, so it checks the token itself: a bad one fails
    # here in one line instead of as a traceback from every worker.
    check_slack_token(settings)

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in gunicorn_options(settings).items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return build_bot(settings).start_jobs().wsgi

    Server().run()


def serve_socket(settings: Settings) -> None:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    bot = build_bot(settings, socket_mode=True).start_jobs()
    assert settings.slack_app_token is not None
    log.info("Connecting to Slack in Socket Mode")
    handler = SocketModeHandler(bot.slack, settings.slack_app_token.value)
    handler.connect()
    try:
        watch_connection(handler.client.is_connected)
    finally:
        handler.close()
    # A connection that stays down is a known silent stall after reconnects
    # (bolt-python#1529): exit non-zero so the platform restarts the process.
    raise SocketStalled(f"Socket Mode connection down for over {STALL_GRACE:.0f} s; exiting so it is restarted")


STALL_CHECK = 10.0  # seconds between connection checks
STALL_GRACE = 120.0  # longer than the SDK's own reconnect attempts take


class SocketStalled(RuntimeError):
    """The Socket Mode connection stayed down past the grace period."""


def watch_connection(
    is_connected: Callable[[], bool],
    *,
    interval: float = STALL_CHECK,
    grace: float = STALL_GRACE,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once `is_connected()` has been false for longer than `grace` seconds."""
    down_since: float | None = None
    while True:
        sleep(interval)
        if is_connected():
            if down_since is not None:
                log.info("Socket Mode connection is back")
            down_since = None
            continue
        now = clock()
        if down_since is None:
            down_since = now
            log.warning("Socket Mode connection is down; waiting for the SDK to reconnect")
        elif now - down_since > grace:
            return
