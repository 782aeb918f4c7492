"""The HTTP edge for HTTP mode: `POST /slack/events` to Bolt, `GET /healthz` for monitors.

`/slack/events` faces the whole internet, so everything Bolt would otherwise do with a
request before its signature is checked happens here first, cheaply and quietly:

1. only `POST /slack/events`, `GET|HEAD /healthz` and `GET /metrics` exist (404/405 otherwise);
2. a missing `Content-Length`, or one over `MAX_BODY` (1 MiB; Slack's payloads are a few
   kB), gets 413 before a byte of the body is read;
3. the body must arrive whole within `body_timeout` seconds (WEB_BODY_TIMEOUT, 10) of the
   headers, or the request gets 408 and its connection is closed;
4. the signature is checked with slack_sdk's `SignatureVerifier` (a malformed timestamp
   is a failed check, not an exception); a failure gets 401 and one log line with the
   method, path, length and reason, never the body, at most once a minute per reason
   at WARNING (the rest are counted and the count is in the next line);
5. a body that is not UTF-8, or a signed one Bolt could not parse, gets 400;
6. a command whose answer this process holds is acked here, as Bolt would ack it
   (bot/slack/ack_shortcut.py; WEB_ACK_SHORTCUT=0 turns that off);
7. everything else goes to Bolt (which checks the signature again, cheaply).

The checks live in `SlackEdge`, which knows no server interface. Two thin adapters serve it:
- `BotRSGI`, what `python -m bot serve` runs under granian: the body is awaited on the
  worker's event loop, so a client that trickles it holds a small task, never a thread
  (docs/http-edge.md); only complete bodies reach Bolt, on the loop itself:
  the ack path does no I/O, so nothing there waits;
- `BotWSGI`, `bot.wsgi:application`, for any other WSGI server and the in-process test
  server; there the server's own body timeout, if it has one, is what protects a thread.

`/healthz` makes no Slack or Desk call: it answers from memory, so monitors can poll it.
`/metrics` is Prometheus' (bot/metrics.py): a bearer token, or loopback only; a refused
scrape costs one header comparison. Refused Slack requests are counted there too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from slack_bolt import App
from slack_bolt.request import BoltRequest
from slack_sdk.signature import SignatureVerifier

from bot import __version__, metrics
from bot.deps import BotDeps
from bot.metrics import METRICS_PATH, MetricsEndpoint
from bot.slack.ack_shortcut import AckShortcut

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
Environ = dict[str, Any]
EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
MAX_BODY = 1024 * 1024  # bytes; Slack's largest payloads (a view submission) are far smaller
BODY_TIMEOUT = 10.0  # seconds a body may take to arrive after its headers (granian cuts headers at 10 s too)
REFUSALS = {
    400: "malformed request",
    401: "invalid request",
    408: "request body too slow",
    413: "request too large",
}
REJECTION_LOG_INTERVAL = 60.0  # seconds between log lines for one kind of rejected request
CLOSE = ("Connection", "close")


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


@dataclass(frozen=True, slots=True)
class EdgeReply:
    """One HTTP answer, whatever server interface carries it."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    @classmethod
    def text(cls, status: int, text: str, *extra: tuple[str, str]) -> EdgeReply:
        body = text.encode()
        headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *extra]
        return cls(status, headers, body)

    @classmethod
    def json(cls, status: int, value: Any, *extra: tuple[str, str]) -> EdgeReply:
        body = json.dumps(value).encode()
        return cls(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *extra], body)

    @property
    def status_line(self) -> str:
        return f"{self.status} {_reason(self.status)}"


# The request headers Bolt reads. Only these are passed on: some servers (granian) copy the process
# environment into every WSGI environ, so an HTTP_* variable of the process would otherwise look
# like a request header (HTTP_PROXY, say).
BOLT_HEADERS = ("x-slack-signature", "x-slack-request-timestamp", "x-slack-retry-num", "x-slack-retry-reason")


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


class SlackEdge:
    """The edge's decisions, in order, for any server interface: route, size, signature, shape, Bolt."""

    def __init__(
        self,
        app: App,
        deps: BotDeps,
        *,
        signing_secret: str,
        max_body: int = MAX_BODY,
        body_timeout: float = BODY_TIMEOUT,
        metrics_endpoint: MetricsEndpoint | None = None,
        ack_shortcut: AckShortcut | None = None,
    ) -> None:
        self.app = app
        self.ack_shortcut = ack_shortcut
        self.metrics = metrics_endpoint or MetricsEndpoint(None)
        self.deps = deps
        self.max_body = max_body
        self.body_timeout = body_timeout
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

    def health_reply(self) -> EdgeReply:
        return EdgeReply.json(200, self.health(), ("Cache-Control", "no-store"))

    def route(self, method: str, path: str) -> str | EdgeReply:
        """`HEALTH_PATH`, `METRICS_PATH` or `EVENTS_PATH` to serve, or the reply that ends the request."""
        if path == HEALTH_PATH and method in ("GET", "HEAD"):
            return HEALTH_PATH
        if path == METRICS_PATH:
            return METRICS_PATH
        if path != EVENTS_PATH:
            return EdgeReply.text(404, "Not Found")
        if method != "POST":
            return EdgeReply.text(405, "Method Not Allowed", ("Allow", "POST"))
        return EVENTS_PATH

    def refuse(self, status: int, reason: str, declared: str, *extra: tuple[str, str]) -> EdgeReply:
        self.rejections.note(status, reason, "POST", EVENTS_PATH, declared or "no")
        metrics.slack_request("unknown", "none", str(status))
        # The same answer Bolt gives a failed signature check, so clients see one shape.
        return EdgeReply.json(status, {"error": REFUSALS[status]}, *extra)

    def length_problem(self, declared: str) -> EdgeReply | None:
        """413 for a body that is not to be read at all, before a byte of it is."""
        if declared.isdigit() and int(declared) <= self.max_body:
            return None
        # The body stays unread, so the connection cannot be reused: ask the server to close it.
        reason = "no Content-Length" if not declared else f"Content-Length over {self.max_body} bytes"
        return self.refuse(413, reason, declared, CLOSE)

    def too_slow(self, declared: str) -> EdgeReply:
        return self.refuse(408, f"body not received within {self.body_timeout:g} s", declared, CLOSE)

    def slack(self, body: bytes, declared: str, headers: dict[str, str | Sequence[str]], query: str) -> EdgeReply:
        """A whole body, checked, then Bolt's answer."""
        if len(body) != int(declared):
            return self.refuse(400, "body shorter than its Content-Length", declared)
        try:  # Slack sends UTF-8; the signature check itself needs text
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return self.refuse(400, "body is not UTF-8", declared)
        unsigned = self._signature_problem(text, headers)
        if unsigned is not None:
            return self.refuse(401, unsigned, declared)
        content_type = str(headers.get("content-type", ""))
        problem = _shape_problem(text, content_type)
        if problem is not None:
            return self.refuse(400, f"signed {problem}", declared)
        response = self.ack_shortcut.answer(text, content_type) if self.ack_shortcut is not None else None
        if response is None:
            response = self.app.dispatch(BoltRequest(body=text, query=query, headers=headers))
        payload = response.body.encode() if isinstance(response.body, str) else bytes(response.body or b"")
        out = [(name, value) for name, values in response.headers.items() for value in values]
        if not any(name.lower() == "content-length" for name, _ in out):
            out.append(("Content-Length", str(len(payload))))
        return EdgeReply(response.status, out, payload)

    def _signature_problem(self, body: str, headers: Mapping[str, str | Sequence[str]]) -> str | None:
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


class BotWSGI:
    """The edge as a WSGI application (`bot.wsgi:application`, the in-process test server)."""

    def __init__(self, edge: SlackEdge) -> None:
        self.edge = edge

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        edge = self.edge
        target = edge.route(environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", ""))
        if target == METRICS_PATH:
            return edge.metrics(environ, start_response)
        if target == HEALTH_PATH:
            return _send(start_response, edge.health_reply())
        if isinstance(target, EdgeReply):
            return _send(start_response, target)
        declared = str(environ.get("CONTENT_LENGTH") or "")
        refused = edge.length_problem(declared)
        if refused is not None:
            return _send(start_response, refused)
        body = environ["wsgi.input"].read(int(declared)) if int(declared) else b""
        query = environ.get("QUERY_STRING", "")
        return _send(start_response, edge.slack(body, declared, _wsgi_headers(environ), query))


def _send(start_response: StartResponse, reply: EdgeReply) -> list[bytes]:
    start_response(reply.status_line, reply.headers)
    return [reply.body]


def _wsgi_headers(environ: Environ) -> dict[str, str | Sequence[str]]:
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


class BotRSGI:
    """The edge as an RSGI application (granian's own interface), what `python -m bot serve` runs.

    The body is awaited on the event loop under `body_timeout`, so a slow body costs a task
    and a socket, not one of a few threads. Bolt then runs on the loop itself: its ack path
    does no I/O (lazy listeners run in Bolt's executor), so a hand-off to a thread would only
    add latency. `/metrics` reads prometheus-client's files, and `/healthz` may ping Redis:
    both run in a small thread pool instead, so they never stall the loop.
    """

    def __init__(self, edge: SlackEdge, *, threads: int = 2) -> None:
        self.edge = edge
        self._blocking = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="edge")

    async def __call__(self, scope: Any, protocol: Any) -> None:
        edge = self.edge
        target = edge.route(scope.method, scope.path)
        if target == HEALTH_PATH:
            reply = await asyncio.get_running_loop().run_in_executor(self._blocking, edge.health_reply)
        elif target == METRICS_PATH:
            reply = await asyncio.get_running_loop().run_in_executor(self._blocking, self._metrics, scope)
        elif isinstance(target, EdgeReply):
            reply = target
        else:
            reply = await self._events(scope, protocol)
        protocol.response_bytes(reply.status, reply.headers, reply.body)

    async def _events(self, scope: Any, protocol: Any) -> EdgeReply:
        edge = self.edge
        source = scope.headers
        declared = str(source.get("content-length") or "")
        refused = edge.length_problem(declared)
        if refused is not None:
            return refused
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for wraps the read in a task of its own,
            # which cost the ack path 3-4 % (docs/http-edge.md); a timer handle costs nothing measurable.
            async with asyncio.timeout(edge.body_timeout):
                body: bytes = await protocol()
        except TimeoutError:
            return edge.too_slow(declared)
        except Exception:  # noqa: BLE001  the client went away mid-body: granian closes the connection
            return edge.refuse(400, "body shorter than its Content-Length", declared, CLOSE)
        headers: dict[str, str | Sequence[str]] = {}
        for name in (*BOLT_HEADERS, "content-type", "content-length"):
            value = source.get(name)
            if value is not None:
                headers[name] = value
        return edge.slack(body, declared, headers, scope.query_string)

    def _metrics(self, scope: Any) -> EdgeReply:
        """`/metrics` through its WSGI endpoint, with the environ it reads."""
        environ: Environ = {
            "REQUEST_METHOD": scope.method,
            "PATH_INFO": scope.path,
            "QUERY_STRING": scope.query_string,
            "REMOTE_ADDR": _client_address(scope.client),
        }
        for name, value in scope.headers.items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        started: list[Any] = []
        body = b"".join(self.edge.metrics(environ, lambda status, headers: started.extend((status, headers))))
        return EdgeReply(int(str(started[0]).split(" ", 1)[0]), list(started[1]), body)


def _client_address(client: str) -> str:
    """The address of granian's `client`, which carries the port: "127.0.0.1:5000", "[::1]:5000"."""
    return (client.rsplit(":", 1)[0] if ":" in client else client).strip("[]")


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
