"""The embedded Desk emulator: Tencent's `robot_get_language_list` contract on a loopback port.

`DeskEmulator` is a real HTTP server (stdlib `ThreadingHTTPServer`) that checks a
request the way docs/desk-api.md §1 documents it (path, SDKAppID, admin identifier,
UserSig v2, `random`, `contenttype`, JSON body, 5 calls/s) and answers with
Tencent's JSON envelope. The demo (`DESK_SANDBOX=1`) points the bot at it, and
tests use it instead of mocking `requests`, so the client's real HTTP, encoding
and error handling are exercised.

Misbehaviour is injected with `Fault`s (an error code, a hang, an HTTP 502, a
truncated body), either in process or through a small HTTP control API under
`/_emulator/` for tests and benchmarks in other processes. Every Desk call is
recorded so callers can check what was sent and how fast.

The emulator never logs: its request line carries the UserSig.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import re
import signal
import socket
import socketserver
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import unquote

from bot.desk.usersig import InvalidUserSig, verify_usersig

log = logging.getLogger(__name__)

SANDBOX_SDKAPPID: int = 1400000001
SANDBOX_KEY: str = "sandbox-key-not-a-secret-0123456789abcdef"  # public, emulator-only key
SANDBOX_ADMINS: tuple[str, ...] = ("administrator",)
SAMPLE_LANGUAGES: list[tuple[str, int]] = [
    ("en", 1),
    ("zh", 0),
    ("zh-TW", 0),
    ("ja", 0),
    ("id", 0),
    ("vi", 0),
    ("fil", 0),
]


def sample_for_app(index: int) -> list[tuple[str, int]]:
    """The list of the `index`-th emulated app (DESK_SANDBOX=1 with DESK_APPS): the first is the
    sample above; the others differ from it, so comparing two emulated apps shows something."""
    variants = (
        SAMPLE_LANGUAGES,
        [("en", 1), ("zh", 0), ("ja", 0), ("id", 0), ("th", 0)],  # no zh-TW, vi, fil; Thai added
        [("ja", 1), ("en", 0), ("zh", 0), ("zh-TW", 0)],  # another default
    )
    return list(variants[index % len(variants)])


# Spelled out here rather than imported from the client, so a typo in one is caught by the other.
API_PATH = "/v4/openim_console_http_svc/robot_get_language_list"
CONTROL_PREFIX = "/_emulator/"
MAX_RANDOM = 2**32 - 1
MAX_BODY = 1 << 20
RATE_WINDOW = 1.0  # seconds; Desk allows `rate_limit` calls per second

_IDENTIFIER = re.compile(r"[A-Za-z0-9_-]{1,32}")
_UINT = re.compile(r"[0-9]{1,20}")  # bounded: int() refuses very long digit strings

# What `verify_usersig` reports, as the code Tencent answers.
_SIG_FAILURES: dict[str, tuple[int, str]] = {
    "malformed": (70003, "usersig could not be parsed"),
    "mismatch": (70014, "sdkappid does not match the one in usersig"),
    "bad-signature": (70009, "usersig verification failed: wrong key"),
    "expired": (70001, "usersig expired"),
}
_OMIT = object()  # set_languages(None): the success body has no `Languages` field at all


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour, applied to the next Desk call instead of (or before) checking it.

    A `hang` is served first; then `http_status`, `truncated` and `code` are tried in
    that order, and a fault with none of them answers normally after the hang.
    """

    code: int | None = None  # answer 200 with this ErrorCode (ActionStatus FAIL)
    error_info: str = ""  # its ErrorInfo; a stock text when empty
    hang: float | None = None  # seconds to wait before answering
    http_status: int | None = None  # answer this status with a small HTML body
    truncated: bool = False  # answer 200 with a valid success body cut in half

    def __post_init__(self) -> None:
        if self.code is not None and (isinstance(self.code, bool) or not isinstance(self.code, int)):
            raise ValueError("code must be an integer")
        if not isinstance(self.error_info, str):
            raise ValueError("error_info must be a string")
        if self.hang is not None and (
            isinstance(self.hang, bool)
            or not isinstance(self.hang, int | float)
            or not 0 <= self.hang <= 3600
        ):
            raise ValueError("hang must be a number of seconds between 0 and 3600")
        if self.http_status is not None and (
            isinstance(self.http_status, bool)
            or not isinstance(self.http_status, int)
            or not 200 <= self.http_status <= 599
            or self.http_status in (204, 304)  # these may not carry the HTML body
        ):
            raise ValueError("http_status must be an HTTP status from 200 to 599 (not 204 or 304)")
        if not isinstance(self.truncated, bool):
            raise ValueError("truncated must be true or false")


@dataclass(frozen=True)
class CallRecord:
    at: float  # the emulator's clock (time.time() by default) when the request arrived
    raw_query: str  # the query string exactly as received (not decoded)
    body: bytes
    outcome: int | str  # ErrorCode answered (0 ok), or "http-502", "hang", "truncated"


@dataclass
class _Call:
    """A CallRecord still being answered; its outcome is filled in once known."""

    at: float
    raw_query: str
    body: bytes
    outcome: int | str = "pending"

    def frozen(self) -> CallRecord:
        return CallRecord(self.at, self.raw_query, self.body, self.outcome)


@dataclass(frozen=True)
class _Answer:
    status: int
    content_type: str
    body: bytes
    close: bool = False


def _json_answer(payload: Any, status: int = 200) -> _Answer:
    return _Answer(status, "application/json", json.dumps(payload).encode())


def _html_answer(status: int) -> _Answer:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    title = f"{status} {phrase}"
    page = (
        f"<html><head><title>{title}</title></head><body>"
        f"<center><h1>{title}</h1></center><hr><center>nginx</center></body></html>\n"
    )
    return _Answer(status, "text/html", page.encode())


def _parse_query(raw_query: str) -> dict[str, str]:
    """Split a query string without decoding it; the first occurrence of a name wins."""
    params: dict[str, str] = {}
    for pair in raw_query.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            params.setdefault(name, value)
    return params


def _uint(text: str | None) -> int | None:
    """A plain unsigned decimal (ASCII digits only), or None."""
    return int(text) if text is not None and _UINT.fullmatch(text) else None


def _is_pair(item: object) -> bool:
    return isinstance(item, tuple | list) and len(item) == 2


def max_in_window(times: Iterable[float], window: float = 1.0) -> int:
    """The most events within any `window` seconds (half-open windows)."""
    ordered = sorted(times)
    most = first = 0
    for last, at in enumerate(ordered):
        while at - ordered[first] >= window:
            first += 1
        most = max(most, last - first + 1)
    return most


class DeskEmulator:
    """Tencent Desk's `robot_get_language_list` on a loopback port, with fault injection.

    The injected `clock` is the emulator's "now" everywhere: UserSig expiry, the
    rate-limit window and `CallRecord.at`.
    """

    def __init__(
        self,
        *,
        sdkappid: int = SANDBOX_SDKAPPID,
        key: str = SANDBOX_KEY,
        admins: Sequence[str] = SANDBOX_ADMINS,
        languages: object = SAMPLE_LANGUAGES,
        rate_limit: int = 5,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if rate_limit < 0:
            raise ValueError("rate_limit must not be negative")
        self.sdkappid = sdkappid
        self.admins = tuple(admins)
        self.rate_limit = rate_limit
        self._key = key
        self._address = (host, port)
        self._clock = clock
        self._lock = threading.Lock()
        self._languages: Any = _OMIT
        self._faults: deque[list[Any]] = deque()  # [Fault, remaining uses or -1]
        self._calls: list[_Call] = []
        self._accepted: deque[float] = deque()  # arrival times of calls inside the rate window
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None
        self.set_languages(languages)

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> DeskEmulator:
        if self._server is not None or self._stopping.is_set():
            raise RuntimeError("a DeskEmulator can be started only once")
        server = _Server(self._address, _Handler)
        server.emulator = self
        host, port = server.server_name, server.server_port
        self._server = server
        self._base_url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},  # stop() waits up to this long for the loop
            name=f"desk-emulator-{port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hangs in progress are cut short and their connections dropped."""
        server, self._server = self._server, None
        self._stopping.set()
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            open_connections = list(self._connections)
        for connection in open_connections:  # idle keep-alive and hanging requests
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    def __enter__(self) -> DeskEmulator:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("the emulator has not been started")
        return self._base_url

    # --- state ----------------------------------------------------------------------------------
    def set_languages(self, items: object) -> None:
        """Set what a successful call returns in `Languages`.

        A list of `(tag, is_default)` pairs becomes `{"LanguageTag", "IsDefault"}` objects.
        Anything else (a list of dicts, a mixed list, any other JSON value) is served
        verbatim, for odd shapes; `None` leaves the `Languages` field out entirely.
        """
        if items is None:
            payload: Any = _OMIT
        elif isinstance(items, list | tuple) and all(_is_pair(item) for item in items):
            payload = [{"LanguageTag": tag, "IsDefault": flag} for tag, flag in items]
        else:
            payload = copy.deepcopy(items)
        with self._lock:
            self._languages = payload

    def inject(self, fault: Fault, times: int = 1) -> None:
        """Queue `fault` for the next `times` Desk calls (FIFO); `times=-1` keeps it until cleared."""
        if times < -1:
            raise ValueError("times must be -1 (until cleared) or a count")
        if times == 0:
            return
        with self._lock:
            self._faults.append([fault, times])

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def calls(self) -> list[CallRecord]:
        with self._lock:
            return [call.frozen() for call in self._calls]

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def max_calls_in_window(self, window: float = 1.0) -> int:
        """The most Desk calls that arrived within any `window` seconds (half-open windows)."""
        with self._lock:
            arrivals = [call.at for call in self._calls]
        return max_in_window(arrivals, window)

    # --- the Desk endpoint ---------------------------------------------------------------------
    def _desk(
        self, method: str, path: str, raw_query: str, body: bytes | None, arrived: float
    ) -> _Answer | None:
        """Answer one Desk call (body None: unreadable); None means it was stopped mid-hang."""
        call = _Call(arrived, raw_query, b"" if body is None else body)
        with self._lock:
            self._calls.append(call)
            fault = self._next_fault()
        if fault is not None:
            if fault.hang:
                self._settle(call, "hang")
                if self._stopping.wait(fault.hang):
                    return None
            faulty = self._fault_answer(fault, call)
            if faulty is not None:
                return faulty
        if body is None:
            code, info = 60002, "HTTP request could not be parsed"
        else:
            code, info = self._check(method, path, raw_query, body)
        if code == 0:
            code, info = self._admit()
        self._settle(call, code)
        return self._success() if code == 0 else self._failure(code, info)

    def _next_fault(self) -> Fault | None:
        """Pop one use of the first queued fault. Caller holds the lock."""
        if not self._faults:
            return None
        entry = self._faults[0]
        if entry[1] > 0:
            entry[1] -= 1
            if entry[1] == 0:
                self._faults.popleft()
        return cast(Fault, entry[0])

    def _fault_answer(self, fault: Fault, call: _Call) -> _Answer | None:
        if fault.http_status is not None:
            self._settle(call, f"http-{fault.http_status}")
            return _html_answer(fault.http_status)
        if fault.truncated:
            self._settle(call, "truncated")
            whole = self._success().body
            return _Answer(200, "application/json", whole[: len(whole) // 2])
        if fault.code is not None:
            self._settle(call, fault.code)
            return self._failure(fault.code, fault.error_info or "injected error")
        return None

    def _settle(self, call: _Call, outcome: int | str) -> None:
        """Record the outcome once: a call that hung stays "hang" whatever it then answered."""
        with self._lock:
            if call.outcome == "pending":
                call.outcome = outcome

    def _check(self, method: str, path: str, raw_query: str, body: bytes) -> tuple[int, str]:
        """Validate a call in Tencent's order; (0, "") when it may proceed."""
        if path != API_PATH:
            return 60009, "request path is wrong"
        if method != "POST":
            return 60009, "request method must be POST"
        raw = _parse_query(raw_query)

        def param(name: str) -> str | None:
            value = raw.get(name)
            return None if value is None else unquote(value)

        sdkappid = param("sdkappid")
        if not sdkappid:
            return 60012, "sdkappid is missing"
        if _uint(sdkappid) != self.sdkappid:
            return 70020, "sdkappid does not exist"
        identifier = param("identifier")
        if identifier is None or not _IDENTIFIER.fullmatch(identifier):
            return -7, "identifier is missing or invalid"
        usersig = raw.get("usersig")  # Tencent reads it undecoded
        if not usersig:
            return 70002, "usersig is empty"
        if "%" in usersig:
            return 70003, "usersig could not be parsed (it must not be URL-encoded)"
        try:
            claims = verify_usersig(usersig, sdkappid=self.sdkappid, key=self._key, now=self._clock())
        except InvalidUserSig as failure:
            return _SIG_FAILURES.get(str(failure.args[0]), (70003, "usersig could not be parsed"))
        if claims.identifier != identifier:
            return 70013, "identifier does not match the one in usersig"
        if identifier not in self.admins:
            return -20, "identifier is not an App admin"
        random = _uint(param("random"))
        if random is None or random > MAX_RANDOM:
            return -7, "random must be an integer from 0 to 4294967295"
        if param("contenttype") != "json":
            return -7, "contenttype must be json"
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            return -7, "request body is not valid JSON"
        if not isinstance(payload, dict):
            return -7, "request body must be a JSON object"
        return 0, ""

    def _admit(self) -> tuple[int, str]:
        """Sliding-window rate limit; only admitted calls take a place in the window."""
        with self._lock:
            now = self._clock()
            while self._accepted and self._accepted[0] <= now - RATE_WINDOW:
                self._accepted.popleft()
            if len(self._accepted) >= self.rate_limit:
                return -14, f"over this API's limit of {self.rate_limit} calls per second"
            self._accepted.append(now)
        return 0, ""

    def _success(self) -> _Answer:
        payload: dict[str, Any] = {"ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0}
        with self._lock:
            languages = self._languages
        if languages is not _OMIT:
            payload["Languages"] = languages
        payload["RequestId"] = str(uuid.uuid4())
        return _json_answer(payload)

    @staticmethod
    def _failure(code: int, info: str) -> _Answer:
        # An injected code 0 also comes here: "FAIL" with ErrorCode 0 is an odd shape worth testing.
        return _json_answer(
            {"ActionStatus": "FAIL", "ErrorInfo": info, "ErrorCode": code, "RequestId": str(uuid.uuid4())}
        )

    # --- the control API -----------------------------------------------------------------------
    def _control(self, method: str, path: str, body: bytes) -> _Answer:
        routes: dict[str, dict[str, Callable[[Any], Any]]] = {
            "/_emulator/faults": {"POST": self._control_inject, "DELETE": lambda _: self.clear_faults()},
            "/_emulator/languages": {"PUT": self.set_languages},
            "/_emulator/calls": {
                "GET": lambda _: [{"at": c.at, "outcome": c.outcome} for c in self.calls],
                "DELETE": lambda _: self.reset_calls(),
            },
        }
        if path not in routes:
            return _json_answer({"error": "no such control endpoint"}, 404)
        handler = routes[path].get(method)
        if handler is None:
            return _json_answer({"error": f"{method} is not allowed here"}, 405)
        try:
            data = json.loads(body) if body.strip() else None
            result = handler(data)
        except (ValueError, TypeError) as problem:
            return _json_answer({"error": str(problem)}, 400)
        return _json_answer({"ok": True} if result is None else result)

    def _control_inject(self, data: Any) -> None:
        if not isinstance(data, dict):
            raise ValueError("send a JSON object of Fault fields plus an optional times")
        fields = dict(data)
        times = fields.pop("times", 1)
        if isinstance(times, bool) or not isinstance(times, int):
            raise ValueError("times must be an integer")
        self.inject(Fault(**fields), times)  # unknown fields raise TypeError

    # --- the HTTP plumbing calls these ---------------------------------------------------------
    def _now(self) -> float:
        return self._clock()

    def _track(self, connection: socket.socket, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    emulator: DeskEmulator

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN (a DNS query); nothing here needs it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = host if isinstance(host, str) else bytes(host).decode()
        self.server_port = port

    def handle_error(self, request: object, client_address: object) -> None:
        # The default prints a traceback to stderr. A client that hung up is normal here,
        # and nothing may print request details (the URL carries the UserSig).
        failure = sys.exc_info()[1]
        if not isinstance(failure, OSError):
            log.error("Desk emulator: handler failed (%s)", type(failure).__name__)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like Tencent's front end
    server_version = "DeskEmulator/1.0"
    timeout = 30  # idle keep-alive connections are closed after this

    @property
    def _emulator(self) -> DeskEmulator:
        return cast(_Server, self.server).emulator

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request line carries the UserSig."""

    def setup(self) -> None:
        super().setup()
        self._emulator._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._emulator._track(self.connection, False)

    def do_POST(self) -> None:
        self._dispatch()

    do_GET = do_PUT = do_DELETE = do_PATCH = do_POST

    def _dispatch(self) -> None:
        emulator = self._emulator
        arrived = emulator._now()
        path, _, raw_query = self.path.partition("?")
        body = self._read_body()
        answer: _Answer | None
        if path.startswith(CONTROL_PREFIX):
            if body is None:
                answer = _json_answer({"error": "unreadable request body"}, 400)
            else:
                answer = emulator._control(self.command, path, body)
        else:
            answer = emulator._desk(self.command, path, raw_query, body, arrived)
        if answer is None or body is None:  # stopped mid-hang, or the stream is out of step
            self.close_connection = True
        if answer is not None:
            self._send(answer)

    def _read_body(self) -> bytes | None:
        """The request body, by Content-Length or chunked; None when it cannot be read."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            size = 0
            while True:
                line = self.rfile.readline(64)
                try:
                    length = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    return None
                size += length
                if size > MAX_BODY:
                    return None
                if length == 0:
                    while self.rfile.readline(1024).strip():  # trailers, up to the blank line
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(length))
                self.rfile.readline(8)  # the CRLF after each chunk
        declared = _uint(self.headers.get("Content-Length", "0").strip() or "0")
        if declared is None or declared > MAX_BODY:
            return None
        return self.rfile.read(declared)

    def _send(self, answer: _Answer) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        if answer.close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(answer.body)


def serve_forever_cli(port: int, host: str = "127.0.0.1") -> None:
    """Run the emulator in the foreground until Ctrl-C or SIGTERM.

    Prints one line whose last word is the base URL, for scripts to read.
    """
    emulator = DeskEmulator(host=host, port=port).start()
    done = threading.Event()
    previous: Any = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: done.set())
    print(
        f"Desk emulator (SDKAppID {emulator.sdkappid}, admin {emulator.admins[0]}) "
        f"listening on {emulator.base_url}",
        flush=True,
    )
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
