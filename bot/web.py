"""The HTTP edge for HTTP mode: `POST /slack/events` to Bolt, `GET /healthz` for monitors.

`/slack/events` faces the whole internet, so everything Bolt would otherwise do with a
request before its signature is checked happens here first, cheaply and quietly:

1. only `POST /slack/events`, `GET|HEAD /healthz` and `GET /metrics` exist (404/405 otherwise);
2. a missing `Content-Length`, or one over `MAX_BODY` (1 MiB; Slack's payloads are a few
   kB), gets 413 before a byte of the body is read;
3. the signature is checked with slack_sdk's `SignatureVerifier` (a malformed timestamp
   is a failed check, not an exception); a failure gets 401 and one log line with the
   method, path, length and reason, never the body, at most once a minute per reason
   at WARNING (the rest are counted and the count is in the next line);
4. a body that is not UTF-8, or a signed one Bolt could not parse, gets 400;
5. only then does Bolt see the request (it checks the signature again, cheaply).

`/healthz` makes no Slack or Desk call: it answers from memory, so monitors can poll it.
`/metrics` is Prometheus' (bot/metrics.py): a bearer token, or loopback only; a refused
scrape costs one header comparison. Refused Slack requests are counted there too.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from slack_bolt import App
from slack_bolt.request import BoltRequest
from slack_sdk.signature import SignatureVerifier

from bot import __version__, metrics
from bot.deps import BotDeps
from bot.metrics import METRICS_PATH, MetricsEndpoint

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
Environ = dict[str, Any]
EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
MAX_BODY = 1024 * 1024  # bytes; Slack's largest payloads (a view submission) are far smaller
REFUSALS = {400: "malformed request", 401: "invalid request", 413: "request too large"}
REJECTION_LOG_INTERVAL = 60.0  # seconds between log lines for one kind of rejected request


class RejectionLog:
    """Logs rejected requests at most once per `interval` per reason, counting the rest."""

    def __init__(self, interval: float = REJECTION_LOG_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self.counts: dict[str, int] = {}

    def note(self, status: int, reason: str, method: str, path: str, length: str) -> None:
        now = self._clock()
        with self._lock:
            self.counts[reason] = self.counts.get(reason, 0) + 1
            last = self._last.get(reason)
            if last is not None and now - last < self._interval:
                self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
                return
            self._last[reason] = now
            suppressed = self._suppressed.pop(reason, 0)
        more = f" (and {suppressed} more since the last such line)" if suppressed else ""
        # Only fixed, bot-made text: never the body, the headers or the query string.
        log.warning("Refused %s %s (%s bytes) with %d: %s%s", method[:8], path[:64], length[:20], status, reason, more)


def _plain(start_response: StartResponse, status: str, text: str, *extra: tuple[str, str]) -> list[bytes]:
    body = text.encode()
    start_response(
        status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *extra]
    )
    return [body]


# The request headers Bolt reads. Only these are passed on: some servers (granian) copy the process
# environment into every WSGI environ, so an HTTP_* variable of the process would otherwise look
# like a request header (HTTP_PROXY, say).
BOLT_HEADERS = ("x-slack-signature", "x-slack-request-timestamp", "x-slack-retry-num", "x-slack-retry-reason")


def _headers(environ: Environ) -> dict[str, str | Sequence[str]]:
    """The request headers as Bolt expects them: lower-case, dash-separated names."""
    headers: dict[str, str | Sequence[str]] = {}
    for name in BOLT_HEADERS:
        value = environ.get("HTTP_" + name.upper().replace("-", "_"))
        if isinstance(value, str):
            headers[name] = value
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    if environ.get("CONTENT_LENGTH"):
        headers["content-length"] = environ["CONTENT_LENGTH"]
    return headers


def _shape_problem(text: str, content_type: str) -> str | None:
    """Why a signed body is not something Slack sends, or None. Mirrors how Bolt parses a body
    (`slack_bolt.request.internals.parse_body`), which raises, or returns a non-dict, on these."""
    try:
        if content_type == "application/json" or text.startswith("{"):
            return None if isinstance(json.loads(text), dict) else "JSON body is not an object"
        if "payload" in text:
            payload = dict(parse_qsl(text, keep_blank_values=True)).get("payload")
            if payload is not None and not isinstance(json.loads(payload), dict):
                return "payload is not a JSON object"
    except (ValueError, RecursionError):
        return "body is not valid JSON"
    return None


class BotWSGI:
    """The WSGI application: the edge checks above, then Bolt."""

    def __init__(
        self,
        app: App,
        deps: BotDeps,
        *,
        signing_secret: str,
        max_body: int = MAX_BODY,
        metrics_endpoint: MetricsEndpoint | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics_endpoint or MetricsEndpoint(None)
        self.deps = deps
        self.max_body = max_body
        self.rejections = RejectionLog()
        self._verifier = SignatureVerifier(signing_secret)

    def health(self) -> dict[str, Any]:
        report: dict[str, Any] = {"status": "ok", "version": __version__}
        states = [s for s in (app.client.shared_state_health() for app in self.deps.apps) if s is not None]
        if states:
            report["redis"] = "ok" if all(s == "ok" for s in states) else "degraded"
        if self.deps.digests is not None:
            report["digests"] = self.deps.digests.health()
        return report

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == HEALTH_PATH and method in ("GET", "HEAD"):
            body = json.dumps(self.health()).encode()
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            start_response("200 OK", [*headers, ("Cache-Control", "no-store")])
            return [body]
        if path == METRICS_PATH:
            return self.metrics(environ, start_response)
        if path != EVENTS_PATH:
            return _plain(start_response, "404 Not Found", "Not Found")
        if method != "POST":
            return _plain(start_response, "405 Method Not Allowed", "Method Not Allowed", ("Allow", "POST"))
        return self._slack(environ, start_response)

    def _refuse(
        self, start_response: StartResponse, environ: Environ, status: int, reason: str, *extra: tuple[str, str]
    ) -> list[bytes]:
        self.rejections.note(status, reason, "POST", EVENTS_PATH, str(environ.get("CONTENT_LENGTH") or "no"))
        metrics.slack_request("unknown", "none", str(status))
        # The same answer Bolt gives a failed signature check, so clients see one shape.
        body = json.dumps({"error": REFUSALS[status]}).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *extra]
        start_response(f"{status} {_reason(status)}", headers)
        return [body]

    def _slack(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        declared = str(environ.get("CONTENT_LENGTH") or "")
        if not declared.isdigit() or int(declared) > self.max_body:
            # The body stays unread, so the connection cannot be reused: ask the server to close it.
            reason = "no Content-Length" if not declared else f"Content-Length over {self.max_body} bytes"
            return self._refuse(start_response, environ, 413, reason, ("Connection", "close"))
        length = int(declared)
        body = environ["wsgi.input"].read(length) if length else b""
        if len(body) != length:
            return self._refuse(start_response, environ, 400, "body shorter than its Content-Length")
        try:  # Slack sends UTF-8; the signature check itself needs text
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return self._refuse(start_response, environ, 400, "body is not UTF-8")
        headers = _headers(environ)
        unsigned = self._signature_problem(text, headers)
        if unsigned is not None:
            return self._refuse(start_response, environ, 401, unsigned)
        problem = _shape_problem(text, str(headers.get("content-type", "")))
        if problem is not None:
            return self._refuse(start_response, environ, 400, f"signed {problem}")
        response = self.app.dispatch(BoltRequest(body=text, query=environ.get("QUERY_STRING", ""), headers=headers))
        payload = response.body.encode() if isinstance(response.body, str) else bytes(response.body or b"")
        out = [(name, value) for name, values in response.headers.items() for value in values]
        if not any(name.lower() == "content-length" for name, _ in out):
            out.append(("Content-Length", str(len(payload))))
        start_response(f"{response.status} {_reason(response.status)}", out)
        return [payload]

    def _signature_problem(self, body: str, headers: dict[str, str | Sequence[str]]) -> str | None:
        timestamp, signature = headers.get("x-slack-request-timestamp"), headers.get("x-slack-signature")
        if not isinstance(timestamp, str) or not isinstance(signature, str) or not timestamp or not signature:
            return "no Slack signature"
        if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
            return "malformed X-Slack-Request-Timestamp"
        if abs(time.time() - int(timestamp)) > 60 * 5:
            return "X-Slack-Request-Timestamp outside the 5-minute window"
        if not self._verifier.is_valid(body, timestamp, signature):
            return "signature does not match"
        return None


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
