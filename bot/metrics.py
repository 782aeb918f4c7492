"""Prometheus metrics: the metric objects, recording them, and the `/metrics` endpoint.

Low in the layers (beside config and logs), so the Desk client, the Slack side and the
HTTP edge can all record without knowing each other; it imports neither Slack nor settings.

Several worker processes (`python -m bot serve`, docs/monitoring.md §1): prometheus-client's
multiprocess mode. `serve` prepares a fresh directory (`prepare_multiprocess_dir`) and names it
in PROMETHEUS_MULTIPROC_DIR before any worker starts; every process writes its values to its
own files there, and a scrape, answered by whichever worker gets it, sums them all. The mode is
chosen when prometheus_client is first imported, so the metric objects are made on first use
(`_metrics()`), never at import: `serve` may import this module before it sets the variable.
Without the variable (Socket Mode, the WSGI module under another server, tests) the ordinary
single-process registry is used.

A worker that exits is marked dead (its live gauges' files removed; its counters stay counted):
at its own exit (multiprocessing's exit hook and atexit: granian's workers end through
multiprocessing, which skips atexit), and, for a worker that was killed, at scrape time, when a
gauge file's pid no longer exists (`os.kill(pid, 0)`).

Labels carry only names the bot chose or Slack and Desk define (app names from configuration,
API names, error codes from the catalogue, Slack methods and error words): never user text, a
channel, a user or a secret.
"""

from __future__ import annotations

import atexit
import contextlib
import hmac
import ipaddress
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_PATH = "/metrics"
PACKAGE = "desk-languages-bot"
# Desk calls take tens of ms to a few s (DESK_TIMEOUT is 2 s); acks take about a millisecond.
API_CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
WAIT_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
ACK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_WORD = re.compile(r"[A-Za-z0-9_.:-]{1,60}")
_GAUGE_FILE = re.compile(r"gauge_live\w*?_(\d+)\.db")

StartResponse = Callable[..., Any]


def label(value: object, allowed: Iterable[str] | None = None) -> str:
    """A label value that is safe and bounded: `value` if it is a short plain word (and one of
    `allowed` when given), else "unknown"."""
    text = str(value)
    if allowed is not None and text not in allowed:
        return "unknown"
    return text if _WORD.fullmatch(text) else "unknown"


def bot_version() -> str:
    try:
        return version(PACKAGE)
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown"


class _Metrics:
    """Every metric of the bot (made once per process, on first use)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.desk_requests = Counter(
            "desk_api_requests", "HTTP attempts to Desk's REST API, by outcome (ok or the error code)",
            ["app", "api", "outcome"],
        )
        self.desk_duration = Histogram(
            "desk_api_request_duration_seconds", "Time of one HTTP attempt to Desk", ["app", "api"],
            buckets=API_CALL_BUCKETS,
        )
        self.cache_lookups = Counter(
            "desk_cache_lookups", "Cache lookups of Desk results: fresh, stale (served after a failure) or miss",
            ["app", "kind", "result"],
        )
        self.rate_wait = Histogram(
            "desk_rate_limit_wait_seconds", "Time waited for a permit of the bot's own Desk rate limiter",
            ["app", "api"], buckets=WAIT_BUCKETS,
        )
        self.slack_requests = Counter(
            "slack_requests", "Requests from Slack, by kind, action and outcome", ["kind", "action", "outcome"]
        )
        self.slack_ack = Histogram(
            "slack_ack_duration_seconds", "Time from a request's arrival at Bolt to its acknowledgement",
            buckets=ACK_BUCKETS,
        )
        self.slack_api_calls = Counter(
            "slack_api_calls", "Slack Web API calls (every attempt, 429s included), by method and outcome",
            ["method", "outcome"],
        )
        self.digest_posts = Counter("digest_posts", "Channel digests, by outcome", ["outcome"])
        self.watch_alerts = Counter("watch_alerts", "Change alerts, by outcome", ["outcome"])
        self.language_changes = Counter(
            "language_changes", "Language changes that reached Desk, by app, action and outcome",
            ["app", "action", "outcome"],
        )
        self.workflow_steps = Counter(
            "workflow_steps",
            "Workflow Builder steps, by step and outcome: completed or failed (get, check); requested or failed "
            "when asked, then applied, not applied, not seen, rejected or expired when it ends (request)",
            ["step", "outcome"],
        )
        # `max`: every process reports the same version; one series, not one per worker.
        build = Gauge(
            "desk_languages_bot_build_info", "The running version (always 1)", ["version"], multiprocess_mode="max"
        )
        build.labels(version=label(bot_version())).set(1)
        self._shared_state: Any = None
        self._gauge = Gauge
        # Labelled children by (metric, label values): `labels()` takes a lock and builds a key from
        # its arguments on every call, which a warm ack paid twice (docs/benchmarks.md, ack path).
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: Any, *values: str) -> Any:
        """`metric.labels(*values)`, kept: the same child for the same values, without the lock."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:  # racing threads both ask labels(), which hands both the same child
            found = self._children[key] = metric.labels(*values)
        return found

    def shared_state(self) -> Any:
        # Made only by a process that uses Redis, so a bot without REDIS_URL exports no such series.
        # `livemin`: 0 as soon as one live process finds Redis down (each falls back on its own).
        with _made_lock:
            if self._shared_state is None:
                self._shared_state = self._gauge(
                    "shared_state_up", "1 while the shared state (Redis) works, 0 during an outage",
                    multiprocess_mode="livemin",
                )
        return self._shared_state


_made: list[_Metrics] = []
_made_lock = threading.Lock()


def _metrics() -> _Metrics:
    if _made:  # the common case, without the lock
        return _made[0]
    with _made_lock:  # threads recording their first metric at once must not make them twice
        if not _made:
            _made.append(_make())
        return _made[0]


def _make() -> _Metrics:
    made = _Metrics()
    if os.environ.get(MULTIPROC_ENV):
        from multiprocessing import util

        # Each process marks itself dead as it exits: os.getpid() is read then, since forks inherit
        # these hooks. multiprocessing clears its exit hooks in a forked child, so a fork adds them again.
        _exit_hooks(made)
        util.register_after_fork(made, _exit_hooks)
    return made


def _exit_hooks(_: object) -> None:
    from multiprocessing import util

    util.Finalize(None, _mark_self_dead, exitpriority=0)
    atexit.register(_mark_self_dead)


def _mark_self_dead() -> None:
    with contextlib.suppress(Exception):  # at exit, a vanished directory is no reason for a traceback
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())


# --- recording (cheap: memory, or the process's own mmap'd file in multiprocess mode) --------------


def desk_request(app: str, api: str, outcome: str, seconds: float) -> None:
    m = _metrics()
    m.child(m.desk_requests, app, api, outcome).inc()
    m.child(m.desk_duration, app, api).observe(seconds)


def desk_cache_lookup(app: str, kind: str, result: str) -> None:
    m = _metrics()
    m.child(m.cache_lookups, app, kind, result).inc()


def desk_rate_wait(app: str, api: str, seconds: float) -> None:
    m = _metrics()
    m.child(m.rate_wait, app, api).observe(seconds)


def slack_request(kind: str, action: str, outcome: str, ack_seconds: float | None = None) -> None:
    m = _metrics()
    m.child(m.slack_requests, kind, action, outcome).inc()
    if ack_seconds is not None:
        m.slack_ack.observe(ack_seconds)


def slack_api_call(method: str, outcome: str) -> None:
    _metrics().slack_api_calls.labels(method=label(method), outcome=label(outcome)).inc()


def digest_post(outcome: str) -> None:
    _metrics().digest_posts.labels(outcome=outcome).inc()


def watch_alert(outcome: str) -> None:
    _metrics().watch_alerts.labels(outcome=outcome).inc()


def language_change(app: str, action: str, outcome: str) -> None:
    _metrics().language_changes.labels(app=app, action=action, outcome=outcome).inc()


def workflow_step(step: str, outcome: str) -> None:
    _metrics().workflow_steps.labels(step=step, outcome=outcome).inc()


def shared_state_up(up: bool) -> None:
    _metrics().shared_state().set(1 if up else 0)


# --- several processes ---------------------------------------------------------------------------


def prepare_multiprocess_dir() -> Path:
    """For `serve`, before any worker starts: PROMETHEUS_MULTIPROC_DIR as an empty directory.

    Given and existing: emptied (values of a previous run would otherwise be summed in). Not given:
    a fresh temporary directory, removed when this (the parent) process exits.
    """
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for old in path.glob("*.db"):
            old.unlink(missing_ok=True)
        return path
    path = Path(tempfile.mkdtemp(prefix="desk-bot-metrics-"))
    os.environ[MULTIPROC_ENV] = str(path)
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:  # not from a forked worker that inherited this hook
            shutil.rmtree(path, ignore_errors=True)

    atexit.register(remove)
    return path


def mark_dead_workers(path: Path) -> None:
    """Mark dead every process whose live gauge files remain but which no longer exists (killed)."""
    from prometheus_client import multiprocess

    pids = {int(m.group(1)) for f in path.glob("gauge_live*.db") if (m := _GAUGE_FILE.fullmatch(f.name))}
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, str(path))
        except PermissionError:
            pass  # it exists, under another user


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus' text format, summed over every process in multiprocess mode."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    _metrics()  # build info and the metric families exist from the first scrape on
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    from prometheus_client import multiprocess

    mark_dead_workers(Path(directory))
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return generate_latest(registry), CONTENT_TYPE_LATEST


# --- the endpoint ----------------------------------------------------------------------------------


# What a reverse proxy adds for the client it relays (as WSGI environ keys).
FORWARDING_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


def is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool((mapped or ip).is_loopback)


class MetricsEndpoint:
    """`GET /metrics` as a WSGI app, for the HTTP edge and Socket Mode's metrics server alike.

    With a token: `Authorization: Bearer <token>` or 401. Without one: only loopback clients
    (404 to others, as if there were no such route) unless `public`. A loopback request that
    carries a proxy's forwarding header is a proxy on this host relaying someone else: not local. Refusals cost a header
    comparison: nothing is collected before access is granted.
    """

    def __init__(self, token: str | None, *, public: bool = False) -> None:
        self._expected = f"Bearer {token}".encode() if token else None
        self._public = public

    def allowed(self, environ: dict[str, Any]) -> int:
        """200 if this request may read the metrics, else the status to refuse it with."""
        if self._expected is not None:
            given = str(environ.get("HTTP_AUTHORIZATION", "")).encode("utf-8", "replace")
            return 200 if hmac.compare_digest(given, self._expected) else 401
        if self._public:
            return 200
        if is_loopback(str(environ.get("REMOTE_ADDR", ""))) and not any(name in environ for name in FORWARDING_HEADERS):
            return 200
        return 404

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        status = self.allowed(environ)
        if environ.get("PATH_INFO") != METRICS_PATH:
            status = 404
        elif status == 200 and environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            status = 405
        if status != 200:
            body = {401: b"Unauthorized", 404: b"Not Found", 405: b"Method Not Allowed"}[status]
            extra = {401: [("WWW-Authenticate", 'Bearer realm="metrics"')], 405: [("Allow", "GET")]}.get(status, [])
            phrase = {401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed"}[status]
            start_response(
                f"{status} {phrase}",
                [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *extra],
            )
            return [body]
        body, content_type = exposition()
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")]
        start_response("200 OK", headers)
        return [body]
