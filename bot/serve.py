"""Running the bot: HTTP mode under granian (`serve`) or Socket Mode (`socket`).

Both check the configuration and the Slack token before anything starts, so a
deployment with a missing variable fails in seconds with one line naming it.

Why granian: measured on the same 2-core machine with the same WSGI apps
(docs/benchmarks.md, "Choosing the HTTP server"), granian answered the bot's commands
at 1.5-2x gunicorn's gthread rate, and unlike gunicorn it has a header-read timeout,
so clients that trickle headers (slowloris) cost a small Rust task each instead of a
Python thread. Its workers are processes (WEB_CONCURRENCY), replaced when one dies;
SIGTERM lets in-flight work finish for up to 25 s (platforms SIGKILL at about 30 s).

Metrics: `serve` prepares prometheus-client's multiprocess directory before any worker
starts, so a scrape of /metrics sums every worker (bot/metrics.py). `socket` serves
/metrics on METRICS_PORT when set, from a small server thread, with the same rules.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from cachetools import TTLCache
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler

# Bolt's own steps of one envelope (dispatch, then the ack), so a re-delivery can reuse an answer.
from slack_bolt.adapter.socket_mode.internals import run_bolt_app, send_response
from slack_bolt.response import BoltResponse
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest

from bot.boot import build_bot, build_database, check_slack_token, load_configuration
from bot.config import Settings
from bot.metrics import MetricsEndpoint, prepare_multiprocess_dir
from bot.slack.loopback import LoopbackServer

log = logging.getLogger(__name__)
# The one Python thread that runs a worker's event loop (granian allows no more under RSGI): acks
# run there (~1 ms each, no I/O), bodies are awaited there; lazy work runs in the app's own executor.
BLOCKING_THREADS = 1
HEADER_READ_TIMEOUT_MS = 10_000  # a client that has not sent its headers by then is cut
GRACEFUL_TIMEOUT = 25  # seconds in-flight work may take after SIGTERM (platforms SIGKILL at ~30 s)
ACCESS_LOG_FORMAT = '%(addr)s "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).1fms'


def granian_options(settings: Settings) -> dict[str, Any]:
    """granian's settings for this deployment."""
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    return {
        # "::" listens on IPv6 and IPv4 (Heroku Fir needs IPv6); HOST=127.0.0.1 serves this machine only.
        "address": settings.host or "::",
        "port": settings.port,
        # RSGI, granian's own interface: the edge awaits request bodies on the event loop, so a
        # client trickling one costs a task, not a thread (bot/slack/edge.py, docs/http-edge.md).
        "interface": Interfaces.RSGI,
        "http": HTTPModes.http1,
        "websockets": False,
        "workers": settings.web_concurrency,
        "blocking_threads": BLOCKING_THREADS,
        "runtime_threads": 1,
        "http1_settings": HTTP1Settings(header_read_timeout=HEADER_READ_TIMEOUT_MS),
        "respawn_failed_workers": True,
        "workers_kill_timeout": GRACEFUL_TIMEOUT,
        "log_level": LogLevels(settings.log_level.lower()),
        # granian's own loggers go to our root handler, so our redaction and format apply to them.
        "log_dictconfig": {
            "version": 1,
            "disable_existing_loggers": False,
            "loggers": {
                "_granian": {"handlers": [], "propagate": True},
                "granian.access": {"handlers": [], "propagate": True, "level": "INFO"},
            },
        },
        # Off by default: the platform's router logs every request already, and the access
        # log costs a third of the throughput (the path only: query strings are never logged).
        "log_access": settings.web_access_log,
        "log_access_format": ACCESS_LOG_FORMAT,
    }


def load_worker_app() -> Any:
    """Runs in each granian worker: the whole bot, built from the environment, jobs started.
    Module-level (not a closure), so it also works where workers are spawned, not forked."""
    return build_bot(load_configuration()).start_jobs().rsgi


def serve_http(settings: Settings) -> None:
    from granian import Granian

    settings.require_slack_http()
    # Before anything records a metric (the token check below does): workers inherit the variable.
    prepare_multiprocess_dir()
    # The parent process builds no Bolt app, so it checks the token itself: a bad one fails
    # here in one line instead of as a traceback from every worker.
    check_slack_token(settings)
    # And the database's schema, once, before any worker: behind is one line and exit 2 (not a
    # crash of every worker); SQLite is migrated here, so workers find nothing to do.
    build_database(settings, settings.apps).dispose()
    if settings.web_concurrency > 1 and settings.redis_url is None:
        # Each worker keeps its own cache: a refresh or a write in one is not seen by the others.
        log.warning(
            "WEB_CONCURRENCY=%d without REDIS_URL: each worker keeps its own cache and rate limit, so a "
            "refresh or a language change in one worker is not seen by the others until their lists "
            "expire; set REDIS_URL to share them",
            settings.web_concurrency,
        )
    server = Granian("bot.serve:load_worker_app", **granian_options(settings))
    server.serve(target_loader=load_worker_app, wrap_loader=False)


def serve_socket(settings: Settings) -> None:
    bot = build_bot(settings, socket_mode=True).start_jobs()
    assert settings.slack_app_token is not None
    if settings.metrics_port is not None:
        start_metrics_server(bot.metrics_endpoint, settings)
    log.info("Connecting to Slack in Socket Mode")
    handler = AnsweringOnce(bot.slack, settings.slack_app_token.value, ping_interval=settings.socket_ping_interval)
    handler.connect()
    try:
        watch_connection(
            handler.client.is_connected, interval=settings.socket_stall_check, grace=settings.socket_stall_grace
        )
    finally:
        handler.close()
    # A connection that stays down is a known silent stall after reconnects
    # (bolt-python#1529): exit non-zero so the platform restarts the process.
    raise SocketStalled(
        f"Socket Mode connection down for over {settings.socket_stall_grace:g} s; exiting so it is restarted"
    )


REDELIVERY_MEMORY = 600.0  # seconds an envelope's answer is kept for a re-delivery of it
REDELIVERY_WAIT = 3.0  # a re-delivery waits this long for the first delivery's answer (Slack's ack deadline)


class AnsweringOnce(SocketModeHandler):
    """Bolt's Socket Mode handler, running each envelope once.

    An envelope whose ack did not reach Slack (the connection dropped while the bot was working
    on it) comes again on the next connection (docs/slack-platform.md §7.1). Running it again
    would post a lazy answer twice; instead the repeat is acked with the first delivery's answer,
    which the lost ack carried. In memory only: the ack path does no I/O.
    """

    def __init__(self, app: App, app_token: str, *, ping_interval: float) -> None:
        super().__init__(app, app_token, ping_interval=ping_interval)
        self._answers: TTLCache[str, Future[BoltResponse]] = TTLCache(maxsize=10_000, ttl=REDELIVERY_MEMORY)
        self._answers_lock = threading.Lock()

    def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        started = time.time()
        with self._answers_lock:
            known = self._answers.get(req.envelope_id)
            answer = known if known is not None else self._answers.setdefault(req.envelope_id, Future())
        if known is None:
            try:
                answer.set_result(run_bolt_app(self.app, req))
            except BaseException as error:
                answer.set_exception(error)
                raise
        else:
            log.info("Socket Mode envelope delivered again (retry %s); acked with its first answer", req.retry_attempt)
        send_response(client, req, answer.result(timeout=REDELIVERY_WAIT), started)


def start_metrics_server(endpoint: MetricsEndpoint, settings: Settings) -> LoopbackServer:
    """Socket Mode's /metrics on METRICS_PORT, in a daemon thread: on loopback only, unless a token
    or METRICS_PUBLIC=1 lets other addresses in (then on every IPv4 address, or HOST)."""
    assert settings.metrics_port is not None
    open_to_all = settings.metrics_token is not None or settings.metrics_public
    host = (settings.host or "0.0.0.0") if open_to_all else "127.0.0.1"  # noqa: S104  guarded by the rules above
    server = LoopbackServer(endpoint, host=host, port=settings.metrics_port).start()
    log.info("Serving /metrics on %s:%d", host, settings.metrics_port)
    return server



class SocketStalled(RuntimeError):
    """The Socket Mode connection stayed down past the grace period."""


def watch_connection(
    is_connected: Callable[[], bool],
    *,
    interval: float,
    grace: float,
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
