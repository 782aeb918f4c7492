"""A loopback stand-in for Slack: a fake Web API, a `response_url` catcher, and request signing.

`python -m bot demo` runs the whole bot path against `FakeSlack` with no Slack account, and
the test suites (Slack app, digests, benchmarks) use it the way bolt-python's own tests use
their mock server (docs/slack-platform.md §13): a real HTTP server on 127.0.0.1, driven by the real
`slack_sdk.WebClient` (`base_url=fake.api_url`) and `WebhookClient` (`fake.response_url()`).

What the fake does when nothing is scripted:
- every `/api/<method>` call needs `Authorization: Bearer <token>` (or a `token` form field,
  which Slack also accepts): none gives `not_authed`, a wrong one `invalid_auth`, both HTTP 200
  with `ok: false`, as Slack answers;
- `auth.test`, `chat.postMessage` (stores the message per channel, increasing `ts`),
  `chat.update`, `conversations.history` (newest first, `oldest`/`latest`/`inclusive`/`limit`/
  `cursor`, `metadata` only with `include_all_metadata`), `chat.postEphemeral`, `views.publish`
  behave like Slack's happy path; any other method answers `{"ok": true}`;
- `views.open`, `views.update` and `views.push` hold modals to Slack's rules
  (bot/sandbox/slack_views.py, docs/slack-platform.md §16): a trigger_id the fake issued
  (`trigger_id()`, stamped by the injectable `clock`) works once and for 3 s, views are
  validated, `hash` guards updates, a stack holds 3 views; `modal_stack()` and `view()` show
  them, `answer_submission()` applies a `view_submission`'s answer;
- `/response/<name>` records the JSON post and answers 200 `ok`;
- Workflow Builder custom steps: `function_executed_event()` starts an execution with a
  short-lived workflow token (accepted as a token while the fake knows it), and
  `functions.completeSuccess` / `completeError` end it once (`execution_not_in_running_state`
  after), checking the outputs against `functions` (the manifest's, which the test sets):
  a missing, undeclared or mistyped output is `parameter_validation_failed`;
- `apps.connections.open` answers with `socket_mode_url()`, none here; the tests' subclass
  (tests/support/socket_mode_server.py `SocketModeFakeSlack`) starts a loopback Socket Mode
  server beside the Web API and answers with a fresh URL of it (it needs `websockets`, a dev
  dependency, so it stays out of the product).

`script()` queues canned answers per method (or for `"response_url"`): a status, a body,
headers (`Retry-After` on a 429), a delay, a repeat count. Status 0 drops the connection
without answering, the "posted but the answer was lost" case. Every request is recorded
(`calls()`, `responses()`, `GET /_fake/calls` for other processes) the moment it arrives,
with the status it will be answered with; state changes (a stored message) also happen on
arrival, so a delayed or dropped answer still leaves the message posted, as on real Slack.

The signing helpers build request bodies exactly as Slack sends them and sign them with
slack_sdk's own `SignatureVerifier`, so the app under test verifies them for real (docs/slack-platform.md §3).

Nothing here logs; a token that does not match the fake's is redacted in what is recorded.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, cast
from urllib.parse import parse_qsl, urlencode, urlsplit

from slack_sdk.signature import SignatureVerifier

from bot.sandbox.slack_views import ModalViews, SubmissionOutcome, new_trigger_id, state_values

__all__ = [
    "RESPONSE_URL",
    "SANDBOX_APP_ID",
    "SANDBOX_CHANNEL_ID",
    "SANDBOX_TEAM_ID",
    "SANDBOX_USER_ID",
    "FakeSlack",
    "Recorded",
    "block_action_body",
    "block_action_payload",
    "sign",
    "slash_command_body",
    "slash_command_fields",
    "view_submission_body",
    "view_submission_payload",
]

RESPONSE_URL = "response_url"  # the pseudo method name of the response_url catcher
_REDACTED = "<redacted>"
# Form-encoded Slack calls carry these as JSON strings; decode them so tests see structure.
_JSON_FORM_FIELDS = ("blocks", "metadata", "attachments", "view", "outputs")
_TRUE_VALUES = ("1", "true", "True", "yes")
_HISTORY_DEFAULT_LIMIT = 100  # Slack's default page size for conversations.history
_HISTORY_MAX_LIMIT = 999

SANDBOX_APP_ID = "A0SANDBOX"
SANDBOX_TEAM_ID = "T0SANDBOX"
SANDBOX_CHANNEL_ID = "C0SANDBOX"
SANDBOX_USER_ID = "U0SANDBOXUSER"  # the human who types the command
SANDBOX_TEAM_DOMAIN = "sandbox"
SANDBOX_CHANNEL_NAME = "sandbox"
SANDBOX_USER_NAME = "sandbox-user"
# The deprecated `token` field Slack still sends; apps ignore it. Not a credential.
SANDBOX_VERIFICATION_TOKEN = "SandboxVerificationToken"  # noqa: S105


@dataclass(frozen=True)
class Recorded:
    """One request that reached the fake, as it arrived, and the status it was answered with."""

    at: float  # wall-clock arrival time
    path: str  # "/api/chat.postMessage" or "/response/<name>" (no query string)
    method: str  # Slack method name ("chat.postMessage") or "response_url"
    headers: dict[str, str]  # names in Canonical-Case ("Content-Type", "Authorization")
    body: dict[str, Any]  # parsed JSON or form body merged over query parameters
    status: int  # HTTP status we answered; 0 = connection dropped without an answer

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Script:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str]
    delay: float
    remaining: int  # -1 = until cleared
    channel: str | None = None  # only calls whose `channel` is this one


@dataclass
class _Answer:
    status: int  # 0 = drop the connection
    payload: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client must never keep the process alive
    request_queue_size = 1024  # a burst of replies (a cold burst answers hundreds at once) must not be reset
    fake: FakeSlack

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or hang up mid-answer are expected here; stay quiet.
        pass


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeSlack/1"
    sys_version = ""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        headers = {_canonical(k): v for k, v in self.headers.items()}
        fake = cast(_Server, self.server).fake
        answer = fake._answer(self.command, self.path, headers, raw)
        if answer.delay > 0 and fake._stopping.wait(answer.delay):
            return  # the fake is stopping: go away without answering
        if answer.status == 0:
            return  # scripted drop: the client sees the connection close unanswered
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.payload)))
        self.end_headers()
        self.wfile.write(answer.payload)

    do_GET = do_POST = do_DELETE = do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # silent: tests and the demo own the terminal


class FakeSlack:
    """A fake Slack Web API and `response_url` catcher on loopback; see the module docstring."""

    def __init__(
        self,
        *,
        token: str = "xoxb-sandbox-token",  # noqa: S107 (the fake's own made-up token)
        app_token: str = "xapp-sandbox-app-token",  # noqa: S107  Socket Mode's, for apps.connections.open
        host: str = "127.0.0.1",
        port: int = 0,
        team_id: str = SANDBOX_TEAM_ID,
        bot_user_id: str = "U0SANDBOXBOT",
        bot_id: str = "B0SANDBOX",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token = token
        self.app_token = app_token
        self.host = host
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self._requested_port = port
        self._clock = clock  # message `ts` values (digests compare them to periods), trigger_id ages
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._calls: list[Recorded] = []
        self._scripts: dict[str, list[_Script]] = {}
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self.usergroups: dict[str, list[str]] = {}  # usergroups.users.list: group ID -> member IDs
        self._last_ts_micros = 0
        self._modals = ModalViews(clock=clock, team_id=team_id, app_id=SANDBOX_APP_ID, bot_id=bot_id)
        # Workflow Builder custom steps: the manifest's `functions` (set by the test from the generated
        # manifest), and each execution the fake started (`function_executed_event`).
        self.functions: dict[str, Any] = {}
        self._executions: dict[str, StepExecution] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeSlack:
        if self._server is not None:
            raise RuntimeError("FakeSlack is already running")
        server_class = _Server6 if ":" in self.host else _Server
        server = server_class((self.host, self._requested_port), _Handler)
        server.fake = self
        self._stopping.clear()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # so stop() returns promptly
            name=f"fake-slack-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # wakes handlers sleeping on a scripted delay
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=2)
        self._server = self._thread = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeSlack is not running: call start() first")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def api_url(self) -> str:
        """`WebClient(base_url=...)` for this fake."""
        return f"{self.base_url}/api/"

    def response_url(self, name: str | None = None) -> str:
        """A fresh catcher URL; posts to it show up in `responses(name)`."""
        return f"{self.base_url}/response/{name or uuid.uuid4().hex}"

    # -- Socket Mode -----------------------------------------------------------------------

    def socket_mode_url(self) -> str | None:
        """What `apps.connections.open` offers: no websocket here (a subclass may serve one)."""
        return None

    # -- scripting and inspection ----------------------------------------------------------

    def script(
        self,
        method: str,
        *,
        status: int = 200,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        times: int = 1,
        channel: str | None = None,
    ) -> None:
        """Queue a canned answer for a Slack method name or for "response_url".

        Answers are used in the order queued; `times=-1` repeats until `clear_scripts()`.
        With `channel`, only calls to that channel use it (others pass it by).
        With `body=None`, status 200 (or 0) runs the default behaviour (after `delay`), and any
        other status answers Slack's error for it (`ratelimited` for 429, with `Retry-After: 1`
        unless `headers` gives one). A scripted answer wins over the token check.
        """
        if not method:
            raise ValueError("method must name a Slack method or 'response_url'")
        if times == 0 or times < -1:
            raise ValueError("times must be a positive count or -1 (until cleared)")
        if status != 0 and not 100 <= status <= 599:
            raise ValueError("status must be an HTTP status, or 0 to drop the connection")
        if delay < 0:
            raise ValueError("delay must be >= 0")
        entry = _Script(status, copy.deepcopy(body), dict(headers or {}), delay, times, channel)
        with self._lock:
            self._scripts.setdefault(method, []).append(entry)

    def clear_scripts(self) -> None:
        with self._lock:
            self._scripts.clear()

    def calls(self, method: str | None = None) -> list[Recorded]:
        """Every recorded request (API calls and response_url posts), oldest first."""
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def responses(self, name: str | None = None) -> list[Recorded]:
        """What arrived at response_url(s): all of them, or those of `response_url(name)`."""
        path = f"/response/{name}" if name is not None else None
        with self._lock:
            return [
                c
                for c in self._calls
                if c.method == RESPONSE_URL and (path is None or c.path == path)
            ]

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """The stored messages of `channel`, oldest first, metadata included."""
        with self._lock:
            return copy.deepcopy(self._messages.get(channel, []))

    def wait_for(self, predicate: Callable[[FakeSlack], bool], timeout: float = 5.0) -> bool:
        """Block until `predicate(self)` holds (True) or `timeout` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                if predicate(self):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                # Short waits too, in case the predicate also looks at state outside the fake.
                self._changed.wait(min(left, 0.02))

    def reset(self) -> None:
        """Forget calls, scripts, stored messages and modals (`ts` values keep increasing)."""
        with self._lock:
            self._calls.clear()
            self._scripts.clear()
            self._messages.clear()
            self._modals.clear()

    # -- modals ----------------------------------------------------------------------------

    def trigger_id(self, user_id: str = SANDBOX_USER_ID) -> str:
        """A trigger_id issued now to `user_id`, for a command or click to carry: `views.open`
        and `views.push` take it once, within 3 s of the fake's clock."""
        with self._lock:
            return self._modals.mint_trigger(user_id)

    def modal_stack(self, user_id: str = SANDBOX_USER_ID) -> list[dict[str, Any]]:
        """The views of `user_id`'s open modal, root first, as Slack last returned them."""
        with self._lock:
            return self._modals.stack(user_id)

    def view(self, view_id: str) -> dict[str, Any] | None:
        """An open view by its id (`V…`), or None."""
        with self._lock:
            return self._modals.view(view_id)

    def answer_submission(self, view_id: str, answer: dict[str, Any] | None) -> SubmissionOutcome:
        """What the user sees once the app answered a `view_submission` of `view_id` with
        `answer` (the ack's JSON body; None for an empty ack), applied to the stack as Slack does."""
        with self._lock:
            outcome = self._modals.answer_submission(view_id, answer)
            self._changed.notify_all()
            return outcome

    # -- request handling (called from server threads) ------------------------------------

    def _answer(self, verb: str, raw_path: str, headers: dict[str, str], raw: bytes) -> _Answer:
        arrived = time.time()
        url = urlsplit(raw_path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        if url.path == "/_fake/calls":
            return self._control(verb, query)
        if url.path.startswith("/api/") and len(url.path) > len("/api/"):
            method = url.path[len("/api/") :]
        elif url.path.startswith("/response/") and len(url.path) > len("/response/"):
            method = RESPONSE_URL
        else:
            return _text(404, "not_found")
        body = {**query, **_parse_body(headers.get("Content-Type", ""), raw)}
        with self._lock:
            answer = self._scripted(method, body, headers)
            if answer is None:
                answer = self._default(method, body, headers)
            self._calls.append(
                Recorded(
                    at=arrived,
                    path=url.path,
                    method=method,
                    headers=self._redacted_headers(headers),
                    body=self._redacted_body(body),
                    status=answer.status,
                )
            )
            self._changed.notify_all()
        return answer

    def _control(self, verb: str, query: dict[str, str]) -> _Answer:
        if verb == "GET":
            calls = [c.to_dict() for c in self.calls(query.get("method") or None)]
            return _json(200, {"ok": True, "calls": calls})
        if verb == "DELETE":
            with self._lock:
                self._calls.clear()
            return _json(200, {"ok": True})
        return _text(405, "method_not_allowed")

    def _scripted(
        self, method: str, body: dict[str, Any], headers: dict[str, str]
    ) -> _Answer | None:
        queue = self._scripts.get(method) or []
        index = next((i for i, e in enumerate(queue) if e.channel in (None, body.get("channel"))), None)
        if index is None:
            return None
        entry = queue[index]
        if entry.remaining > 0:
            entry.remaining -= 1
            if entry.remaining == 0:
                queue.pop(index)
        extra = dict(entry.headers)
        if entry.body is not None:
            answer = _json(entry.status or 200, entry.body)
        elif entry.status in (0, 200):
            answer = self._default(method, body, headers)
        else:
            error = _error_name(entry.status)
            if entry.status == 429 and not any(k.lower() == "retry-after" for k in extra):
                extra["Retry-After"] = "1"
            if method == RESPONSE_URL:
                answer = _text(entry.status, error)
            else:
                answer = _json(entry.status, {"ok": False, "error": error})
        answer.headers.update(extra)
        answer.delay = entry.delay
        if entry.status == 0:
            answer.status = 0
        return answer

    def _default(self, method: str, body: dict[str, Any], headers: dict[str, str]) -> _Answer:
        if method == RESPONSE_URL:
            return _text(200, "ok")
        token = _bearer(headers) or str(body.get("token") or "")
        if not token:
            return _json(200, {"ok": False, "error": "not_authed"})
        expected = self.app_token if method == "apps.connections.open" else self.token
        if token != expected and not self._workflow_token(token):
            return _json(200, {"ok": False, "error": "invalid_auth"})
        handler = self._methods.get(method)
        result = handler(self, body) if handler is not None else {"ok": True}
        return _json(200, result)

    def _redacted_headers(self, headers: dict[str, str]) -> dict[str, str]:
        out = dict(headers)
        auth = out.get("Authorization")
        if auth is not None and auth != f"Bearer {self.token}":
            out["Authorization"] = f"Bearer {_REDACTED}" if auth.startswith("Bearer ") else _REDACTED
        return out

    def _redacted_body(self, body: dict[str, Any]) -> dict[str, Any]:
        if "token" in body and body["token"] != self.token:
            return {**body, "token": _REDACTED}
        return body

    # -- Slack methods (called with the lock held) -----------------------------------------

    def _next_ts(self) -> str:
        micros = max(int(self._clock() * 1_000_000), self._last_ts_micros + 1)
        self._last_ts_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _auth_test(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": f"https://{SANDBOX_TEAM_DOMAIN}.slack.com/",
            "team": "Sandbox",
            "user": "desk-languages",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _post_message(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = str(body.get("channel") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not (body.get("text") or body.get("blocks") or body.get("attachments")):
            return {"ok": False, "error": "no_text"}
        message: dict[str, Any] = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": SANDBOX_APP_ID,
            "team": self.team_id,
            "channel": channel,
            "text": str(body.get("text") or ""),
            "ts": self._next_ts(),
        }
        for key in ("blocks", "attachments", "metadata", "thread_ts"):
            if body.get(key):
                message[key] = copy.deepcopy(body[key])
        self._messages.setdefault(channel, []).append(message)
        return {"ok": True, "channel": channel, "ts": message["ts"], "message": _public(message)}

    def _update(self, body: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(body.get("channel") or ""), str(body.get("ts") or "")
        found = next((m for m in self._messages.get(channel, []) if m["ts"] == ts), None)
        if found is None:
            return {"ok": False, "error": "message_not_found" if channel else "channel_not_found"}
        for key in ("text", "blocks", "attachments", "metadata"):
            if key in body:
                found[key] = copy.deepcopy(body[key])
        found["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "text": found.get("text", ""),
            "message": _public(found),
        }

    def _history(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = str(body.get("channel") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        try:
            oldest = float(body.get("oldest") or 0)
        except ValueError:
            return {"ok": False, "error": "invalid_ts_oldest"}
        try:
            latest = float(body["latest"]) if body.get("latest") else float("inf")
        except ValueError:
            return {"ok": False, "error": "invalid_ts_latest"}
        inclusive = _truthy(body.get("inclusive"))

        def within(ts: float) -> bool:
            if inclusive:
                return oldest <= ts <= latest
            return oldest < ts < latest

        selected = [m for m in self._messages.get(channel, []) if within(float(m["ts"]))]
        selected.reverse()  # newest first, as Slack lists them
        try:
            limit = int(body.get("limit") or 0) or _HISTORY_DEFAULT_LIMIT
        except ValueError:
            return {"ok": False, "error": "invalid_limit"}
        limit = max(1, min(limit, _HISTORY_MAX_LIMIT))
        offset = _cursor_offset(str(body.get("cursor") or ""))
        page = selected[offset : offset + limit]
        has_more = offset + limit < len(selected)
        with_metadata = _truthy(body.get("include_all_metadata"))
        return {
            "ok": True,
            "messages": [_public(m, with_metadata=with_metadata) for m in page],
            "has_more": has_more,
            "pin_count": 0,
            "response_metadata": {"next_cursor": _cursor(offset + limit) if has_more else ""},
        }

    def _post_ephemeral(self, body: dict[str, Any]) -> dict[str, Any]:
        # Ephemeral messages are never stored: Slack does not list them in history either.
        return {"ok": True, "message_ts": self._next_ts()}

    def _views_publish(self, body: dict[str, Any]) -> dict[str, Any]:
        view = body.get("view")
        if not isinstance(view, dict):
            view = {}
        return {
            "ok": True,
            "view": {
                "id": "V0SANDBOX",
                "team_id": self.team_id,
                "type": "home",
                "app_id": SANDBOX_APP_ID,
                "bot_id": self.bot_id,
                **copy.deepcopy(view),
            },
        }

    def _views_open(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._modals.open(body)

    def _views_update(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._modals.update(body)

    def _views_push(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._modals.push(body)

    def _connections_open(self, body: dict[str, Any]) -> dict[str, Any]:
        url = self.socket_mode_url()
        if url is None:
            return {"ok": True}  # token checks only: no websocket to offer
        return {"ok": True, "url": url}

    def _usergroup_members(self, body: dict[str, Any]) -> dict[str, Any]:
        group = str(body.get("usergroup") or "")
        if group not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self.usergroups[group])}

    # -- Workflow Builder custom steps --------------------------------------------------------------

    def function_executed_event(self, callback_id: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Start an execution of the step `callback_id` with `inputs`: (its function_execution_id,
        the `event_callback` payload Slack sends, carrying a short-lived workflow token)."""
        execution_id = f"Fx{uuid.uuid4().hex[:12].upper()}"
        token = f"xwfp-{uuid.uuid4().hex}"
        with self._lock:
            self._executions[execution_id] = StepExecution(callback_id, token)
        event = {
            "type": "function_executed",
            "function": {"id": f"Fn{callback_id[:8].upper()}", "callback_id": callback_id,
                         "title": str(self.functions.get(callback_id, {}).get("title", callback_id)),
                         "type": "app", "app_id": SANDBOX_APP_ID},
            "inputs": inputs,
            "function_execution_id": execution_id,
            "workflow_execution_id": f"Wx{uuid.uuid4().hex[:12].upper()}",
            "event_ts": f"{self._clock():.6f}",
            "bot_access_token": token,
        }
        payload = {
            "token": "SandboxVerificationToken", "team_id": self.team_id, "api_app_id": SANDBOX_APP_ID,
            "event": event, "type": "event_callback", "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(self._clock()),
        }
        return execution_id, payload

    def execution(self, execution_id: str) -> StepExecution | None:
        with self._lock:
            found = self._executions.get(execution_id)
            return replace(found) if found is not None else None

    def _workflow_token(self, token: str) -> bool:
        return token.startswith("xwfp-") and any(e.token == token for e in self._executions.values())

    def _complete(self, body: dict[str, Any], *, success: bool) -> dict[str, Any]:
        execution = self._executions.get(str(body.get("function_execution_id") or ""))
        if execution is None:
            return {"ok": False, "error": "function_execution_not_found"}
        if execution.state != "running":
            return {"ok": False, "error": "execution_not_in_running_state"}
        if success:
            outputs = body.get("outputs")
            outputs = outputs if isinstance(outputs, dict) else {}
            problem = _output_problem(self.functions.get(execution.callback_id), outputs)
            if problem is not None:
                return {"ok": False, "error": "parameter_validation_failed", "errors": [problem]}
            execution.state, execution.outputs = "completed", outputs
        else:
            if not str(body.get("error") or ""):
                return {"ok": False, "error": "invalid_arguments"}
            execution.state, execution.error = "failed", str(body["error"])
        return {"ok": True}

    def _complete_success(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._complete(body, success=True)

    def _complete_error(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._complete(body, success=False)

    _methods: ClassVar[dict[str, Callable[[FakeSlack, dict[str, Any]], dict[str, Any]]]] = {
        "functions.completeSuccess": _complete_success,
        "functions.completeError": _complete_error,
        "auth.test": _auth_test,
        "apps.connections.open": _connections_open,
        "usergroups.users.list": _usergroup_members,
        "chat.postMessage": _post_message,
        "chat.update": _update,
        "conversations.history": _history,
        "chat.postEphemeral": _post_ephemeral,
        "views.publish": _views_publish,
        "views.open": _views_open,
        "views.update": _views_update,
        "views.push": _views_push,
    }


@dataclass
class StepExecution:
    """One run of a custom step: running until completed (its outputs) or failed (its error)."""

    callback_id: str
    token: str
    state: str = "running"  # running | completed | failed
    outputs: dict[str, Any] | None = None
    error: str | None = None


_SLACK_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "slack#/types/user_id": lambda v: isinstance(v, str) and re.fullmatch(r"[UW][A-Z0-9]{2,}", v) is not None,
    "slack#/types/channel_id": lambda v: isinstance(v, str) and re.fullmatch(r"[CGD][A-Z0-9]{2,}", v) is not None,
}


def _output_problem(function: dict[str, Any] | None, outputs: dict[str, Any]) -> str | None:
    """Why `outputs` do not match the function's declared output parameters (Slack's
    parameter_validation_failed), or None."""
    if function is None:
        return "the function is not declared in the app's manifest"
    declared = function.get("output_parameters", {})
    properties: dict[str, Any] = declared.get("properties", {})
    for name in declared.get("required", []):
        if name not in outputs:
            return f"missing required output {name}"
    for name, value in outputs.items():
        if name not in properties:
            return f"output {name} is not declared"
        kind = properties[name].get("type", "string")
        check = _SLACK_TYPES.get(kind)
        if check is not None and not check(value):
            return f"output {name} is not a {kind}: {value!r}"
    return None


# -- request/answer plumbing -----------------------------------------------------------------


def _json(status: int, payload: dict[str, Any]) -> _Answer:
    return _Answer(
        status,
        json.dumps(payload).encode("utf-8"),
        {"Content-Type": "application/json; charset=utf-8"},
    )


def _text(status: int, text: str) -> _Answer:
    return _Answer(status, text.encode("utf-8"), {"Content-Type": "text/plain; charset=utf-8"})


def _error_name(status: int) -> str:
    if status == 429:
        return "ratelimited"
    return "fatal_error" if status >= 500 else "invalid_request"


def _canonical(name: str) -> str:
    # urllib sends "Content-type"; record one spelling so lookups are predictable.
    return "-".join(part.capitalize() for part in name.split("-"))


def _bearer(headers: dict[str, str]) -> str:
    auth = headers.get("Authorization", "")
    return auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else ""


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value in _TRUE_VALUES) or value == 1


def _public(message: dict[str, Any], *, with_metadata: bool = True) -> dict[str, Any]:
    """A stored message as Slack shows it (history omits metadata unless asked)."""
    out = {k: v for k, v in message.items() if k != "channel"}
    if not with_metadata:
        out.pop("metadata", None)
    return copy.deepcopy(out)


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _cursor_offset(cursor: str) -> int:
    if not cursor:
        return 0
    try:
        return max(0, int(base64.urlsafe_b64decode(cursor.encode()).decode().split(":", 1)[1]))
    except (ValueError, IndexError):
        return 0


def _parse_body(content_type: str, raw: bytes) -> dict[str, Any]:
    """A JSON, form-encoded or multipart body as a dict (form values as str)."""
    if not raw:
        return {}
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/json" or (not kind and raw.lstrip().startswith(b"{")):
        try:
            parsed = json.loads(raw)
        except ValueError:
            return {"_raw": raw.decode("utf-8", "replace")}
        return parsed if isinstance(parsed, dict) else {"_json": parsed}
    if kind == "multipart/form-data":
        form = _parse_multipart(content_type, raw)
    else:
        form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    decoded: dict[str, Any] = dict(form)
    for key in _JSON_FORM_FIELDS:
        value = form.get(key)
        if value and value.lstrip()[:1] in ("[", "{"):
            # An undecodable value stays a string: the test can see what was sent.
            with contextlib.suppress(ValueError):
                decoded[key] = json.loads(value)
    return decoded


def _parse_multipart(content_type: str, raw: bytes) -> dict[str, str]:
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + raw)
    form: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        form[str(name)] = (
            f"<file {filename}: {len(data)} bytes>" if filename else data.decode("utf-8", "replace")
        )
    return form


# -- signing and request bodies, as Slack sends them -----------------------------------------


def sign(secret: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    """Headers for `body` signed with `secret` the way Slack signs its requests (docs/slack-platform.md §3)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(ts), body=body)
    return {
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": str(signature),
        "Content-Type": "application/x-www-form-urlencoded",
    }


def slash_command_fields(
    text: str,
    *,
    response_url: str,
    command: str = "/desk-languages",
    channel_id: str = SANDBOX_CHANNEL_ID,
    user_id: str = SANDBOX_USER_ID,
    team_id: str = SANDBOX_TEAM_ID,
    trigger_id: str | None = None,
) -> dict[str, str]:
    """Every field Slack sends with a slash command (docs/slack-platform.md §1.3): the form of an
    HTTP request, and the payload of a Socket Mode `slash_commands` envelope."""
    return {
        "token": SANDBOX_VERIFICATION_TOKEN,
        "team_id": team_id,
        "team_domain": SANDBOX_TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": SANDBOX_CHANNEL_NAME,
        "user_id": user_id,
        "user_name": SANDBOX_USER_NAME,
        "command": command,
        "text": text,
        "api_app_id": SANDBOX_APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id or new_trigger_id(time.time()),
    }


def slash_command_body(text: str, *, response_url: str, **fields: Any) -> str:
    """The form-encoded body of a slash command over HTTP (`slash_command_fields`' keywords)."""
    return urlencode(slash_command_fields(text, response_url=response_url, **fields))


def _find_action(message: dict[str, Any] | None, action_id: str) -> tuple[str, dict[str, Any]]:
    """The block_id and element of `action_id` in `message`'s blocks, if it is there."""
    for block in (message or {}).get("blocks") or []:
        elements = list(block.get("elements") or [])
        if isinstance(block.get("accessory"), dict):
            elements.append(block["accessory"])
        for element in elements:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return str(block.get("block_id") or "sandbox-block"), element
    return "sandbox-block", {}


def block_action_payload(
    action_id: str,
    *,
    response_url: str | None = None,
    value: str = "",
    channel_id: str = SANDBOX_CHANNEL_ID,
    user_id: str = SANDBOX_USER_ID,
    team_id: str = SANDBOX_TEAM_ID,
    message: dict[str, Any] | None = None,
    view: dict[str, Any] | None = None,
    entered: dict[str, Any] | None = None,
    trigger_id: str | None = None,
) -> dict[str, Any]:
    """A button click (block_actions) as Slack sends it: the JSON of an HTTP request's `payload`
    field, and the payload of a Socket Mode `interactive` envelope.

    Without `message` or `view` the click is on an ephemeral message (the kind a slash
    command's reply is): Slack then sends no `message`, only `container.is_ephemeral: true`.
    With `view` (a modal, as the fake returned it) the click is inside the modal: the
    container is the view, the payload carries the view with its inputs' state (`entered`, as
    `state_values` takes it), and there is neither channel nor `response_url`.
    """
    surface = view if view is not None else message
    block_id, element = _find_action(surface, action_id)
    now = f"{time.time():.6f}"
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id,
        "text": element.get("text") or {"type": "plain_text", "text": action_id, "emoji": True},
        "value": value or str(element.get("value") or ""),  # Slack sends the clicked button's value
        "type": element.get("type") or "button",
        "action_ts": now,
    }
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _payload_user(user_id, team_id),
        "api_app_id": SANDBOX_APP_ID,
        "token": SANDBOX_VERIFICATION_TOKEN,
        "container": {},
        "trigger_id": trigger_id or new_trigger_id(time.time()),
        "team": {"id": team_id, "domain": SANDBOX_TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "state": {"values": {}},
        "actions": [action],
    }
    if view is not None:
        payload["container"] = {"type": "view", "view_id": view.get("id")}
        payload["view"] = _submitted_view(view, entered)
        payload["state"] = copy.deepcopy(payload["view"]["state"])
        return payload
    payload["container"] = {
        "type": "message",
        "message_ts": str((message or {}).get("ts") or now),
        "channel_id": channel_id,
        "is_ephemeral": message is None,
    }
    payload["channel"] = {"id": channel_id, "name": SANDBOX_CHANNEL_NAME}
    payload["response_url"] = response_url or ""
    if message is not None:
        payload["message"] = copy.deepcopy(message)
    return payload


def block_action_body(action_id: str, **fields: Any) -> str:
    """The form-encoded `payload=<json>` of a button click over HTTP (`block_action_payload`'s keywords)."""
    return _payload_body(block_action_payload(action_id, **fields))


def view_submission_payload(
    view: dict[str, Any],
    entered: dict[str, Any] | None = None,
    *,
    user_id: str = SANDBOX_USER_ID,
    team_id: str = SANDBOX_TEAM_ID,
    trigger_id: str | None = None,
) -> dict[str, Any]:
    """A modal's submission (view_submission) as Slack sends it, for `view` as the fake returned
    it (`FakeSlack.view`, `modal_stack`) with `entered` in its inputs (`state_values`' values,
    by block_id; untouched inputs keep their initial values)."""
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": SANDBOX_TEAM_DOMAIN},
        "user": _payload_user(user_id, team_id),
        "api_app_id": SANDBOX_APP_ID,
        "token": SANDBOX_VERIFICATION_TOKEN,
        "trigger_id": trigger_id or new_trigger_id(time.time()),
        "view": _submitted_view(view, entered),
        "response_urls": [],
        "enterprise": None,
        "is_enterprise_install": False,
    }


def view_submission_body(view: dict[str, Any], entered: dict[str, Any] | None = None, **fields: Any) -> str:
    """The form-encoded `payload=<json>` of a view_submission over HTTP (`view_submission_payload`'s arguments)."""
    return _payload_body(view_submission_payload(view, entered, **fields))


def _payload_user(user_id: str, team_id: str) -> dict[str, str]:
    return {"id": user_id, "username": SANDBOX_USER_NAME, "name": SANDBOX_USER_NAME, "team_id": team_id}


def _submitted_view(view: dict[str, Any], entered: dict[str, Any] | None) -> dict[str, Any]:
    """`view` as an interaction payload carries it: with the state of its inputs."""
    return {**copy.deepcopy(view), "state": {"values": state_values(view, entered)}}


def _payload_body(payload: dict[str, Any]) -> str:
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))})
