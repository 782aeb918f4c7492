"""The embedded Desk emulator: Tencent's chatbot APIs on a loopback port.

`DeskEmulator` is a real HTTP server (stdlib `ThreadingHTTPServer`) that checks a
request the way docs/desk-api.md §1 documents it (path, SDKAppID, admin identifier,
UserSig v2, `random`, `contenttype`, JSON body, 5 calls/s per API) and answers with
Tencent's JSON envelope. The demo (`DESK_SANDBOX=1`) points the bot at it, and
tests use it instead of mocking `requests`, so the client's real HTTP, encoding
and error handling are exercised.

It serves `robot_get_language_list`, the writes `robot_add_language` and
`robot_del_language` (§8: the supported tags, the edition's language limit, the
default that cannot be deleted, a language that still has questions; the list
changes for real), the readiness reads `list_faq` and `desc_robot_config`
(§9: a FAQ library and settings per language), and `update_robot_config` (§12), which
changes one language's settings for real (`desc_robot_config` then shows them). Its
starting state is a `Sample` (`bot/sandbox/desk_samples.py`), or languages, FAQ and
settings passed in.

`update_robot_config` (docs/desk-api.md §12): the language must be one of the chatbot's
(an empty or missing `LanguageTag` is the default language), else 141004, the code
`desc_robot_config` gives for the same mistake; a field of the wrong type is -7; more
than 20 welcome card questions is 141004 (the console's limit; what the API does is not
documented). A field the request leaves out KEEPS its value. Whether Desk keeps or
resets omitted fields is not documented; the bot always sends every field it read, so
it works either way, and tests never depend on the choice.

Misbehaviour is injected with `Fault`s (an error code, a hang, an HTTP 502, a
truncated body, a late or dropped answer), for any call or for one API, either
in process or through a small HTTP control API under `/_emulator/` for tests and
benchmarks in other processes. Every Desk call is recorded so callers can check
what was sent and how fast.

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
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import unquote

from bot.desk.languages import SUPPORTED_TAGS
from bot.desk.usersig import InvalidUserSig, verify_usersig
from bot.sandbox.desk_samples import CONFIGURED_SETTINGS, NEW_LANGUAGE_SETTINGS, SAMPLES, FaqQuestion, Sample

log = logging.getLogger(__name__)

SANDBOX_SDKAPPID: int = 1400000001
SANDBOX_KEY: str = "sandbox-key-not-a-secret-0123456789abcdef"  # public, emulator-only key
SANDBOX_ADMINS: tuple[str, ...] = ("administrator",)
SAMPLE_LANGUAGES: list[tuple[str, int]] = list(SAMPLES["default"].languages)


def sandbox_identity(index: int) -> tuple[int, str]:
    """The SDKAppID and key of the `index`-th emulated app: each app its own (two apps may not
    share an SDKAppID)."""
    return SANDBOX_SDKAPPID + index, SANDBOX_KEY if index == 0 else f"{SANDBOX_KEY}-{index}"


def sample_for_app(index: int) -> list[tuple[str, int]]:
    """The list of the `index`-th emulated app (DESK_SANDBOX=1 with DESK_APPS): the first is the
    sample above; the others differ from it, so comparing two emulated apps shows something."""
    variants = (
        SAMPLE_LANGUAGES,
        [("en", 1), ("zh", 0), ("ja", 0), ("th", 0)],  # no vi, fil; Thai added; room for one more
        [("ja", 1), ("en", 0), ("zh", 0), ("zh-TW", 0)],  # another default
    )
    return list(variants[index % len(variants)])


# Spelled out here rather than imported from the client, so a typo in one is caught by the other.
SERVICE_PATH = "/v4/openim_console_http_svc/"
LIST, ADD, DELETE, FAQ, CONFIG, UPDATE_CONFIG = (
    "robot_get_language_list",
    "robot_add_language",
    "robot_del_language",
    "list_faq",
    "desc_robot_config",
    "update_robot_config",
)
APIS: tuple[str, ...] = (LIST, ADD, DELETE, FAQ, CONFIG, UPDATE_CONFIG)
WELCOME_CARD_QUESTION_LIMIT = 20  # the console's limit (docs/desk-api.md §9.2)
API_PATH = SERVICE_PATH + LIST
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
_Handled = tuple[int, str, dict[str, Any]]  # ErrorCode, ErrorInfo, the answer's other fields
_OMIT = object()  # set_languages(None): the success body has no `Languages` field at all
_FROM_SAMPLE = object()  # DeskEmulator(languages=...) not given: the sample's


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour, applied to the next Desk call (of `api`, when given).

    A `hang` is served first (nothing has happened yet); then `http_status` and `code`
    answer instead of the call, which does not take effect. Otherwise the call is handled
    as usual (a write takes effect) and then its answer is damaged: `late` waits before
    answering, `drop` closes the connection without an answer, `truncated` cuts it in half.
    """

    code: int | None = None  # answer 200 with this ErrorCode (ActionStatus FAIL)
    error_info: str = ""  # its ErrorInfo; a stock text when empty
    hang: float | None = None  # seconds to wait before handling the call
    http_status: int | None = None  # answer this status with a small HTML body
    truncated: bool = False  # handle the call, then answer 200 with the body cut in half
    late: float | None = None  # handle the call, then wait this many seconds before answering
    drop: bool = False  # handle the call, then close the connection without answering
    api: str | None = None  # only calls of this API (e.g. "robot_add_language"); None: any call

    def __post_init__(self) -> None:
        if self.code is not None and (isinstance(self.code, bool) or not isinstance(self.code, int)):
            raise ValueError("code must be an integer")
        if not isinstance(self.error_info, str):
            raise ValueError("error_info must be a string")
        for name in ("hang", "late"):
            seconds = getattr(self, name)
            if seconds is not None and (
                isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= 3600
            ):
                raise ValueError(f"{name} must be a number of seconds between 0 and 3600")
        if self.http_status is not None and (
            isinstance(self.http_status, bool)
            or not isinstance(self.http_status, int)
            or not 200 <= self.http_status <= 599
            or self.http_status in (204, 304)  # these may not carry the HTML body
        ):
            raise ValueError("http_status must be an HTTP status from 200 to 599 (not 204 or 304)")
        if not isinstance(self.truncated, bool) or not isinstance(self.drop, bool):
            raise ValueError("truncated and drop must be true or false")
        if self.api is not None and self.api not in APIS:
            raise ValueError(f"api must be one of {', '.join(APIS)}")


@dataclass(frozen=True)
class CallRecord:
    at: float  # the emulator's clock (time.time() by default) when the request arrived
    raw_query: str  # the query string exactly as received (not decoded)
    body: bytes
    outcome: int | str  # ErrorCode answered (0 ok), or "http-502", "hang", "truncated", "late", "dropped"
    api: str = ""  # the command of the path ("robot_add_language", …); "" for a path Desk does not know

    @property
    def identifier(self) -> str | None:
        """The Desk admin the call claims to be (the query's `identifier`; not a secret): which of
        several clients of one app sent it, when each has its own admin (DESK_<APP>_IDENTIFIER)."""
        value = _parse_query(self.raw_query).get("identifier")
        return None if value is None else unquote(value)


@dataclass
class _Call:
    """A CallRecord still being answered; its outcome is filled in once known."""

    at: float
    raw_query: str
    body: bytes
    api: str
    outcome: int | str = "pending"

    def frozen(self) -> CallRecord:
        return CallRecord(self.at, self.raw_query, self.body, self.outcome, self.api)


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


def _is_default(item: Mapping[str, Any]) -> bool:
    return item.get("IsDefault") in (1, "1", True)


def _tag_of(item: Mapping[str, Any]) -> str:
    tag = item.get("LanguageTag")
    return tag if isinstance(tag, str) else ""


def _positive(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _questions(items: Iterable[FaqQuestion | Mapping[str, Any]]) -> list[FaqQuestion]:
    return [item if isinstance(item, FaqQuestion) else FaqQuestion.from_desk(item) for item in items]


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError("send a JSON object")
    return dict(data)


def _tagged(data: Any, name: str, kind: type) -> tuple[str, Any]:
    """(LanguageTag, data[name]) of a control request such as {"LanguageTag": "vi", "Questions": [...]}."""
    fields = _object(data)
    tag, value = fields.get("LanguageTag"), fields.get(name)
    if not isinstance(tag, str) or not isinstance(value, kind):
        raise ValueError(f"send {{\"LanguageTag\": a string, \"{name}\": a {kind.__name__}}}")
    return tag, value


def _switch(value: object) -> bool:
    return value in (0, 1) and not isinstance(value, bool)


def _string(value: object) -> bool:
    return isinstance(value, str)


def _threshold(value: object) -> bool:
    return isinstance(value, str) or (isinstance(value, int | float) and not isinstance(value, bool))


def _string_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


# The fields `update_robot_config` takes (docs/desk-api.md §12.1) and what each must be.
_SETTING_TYPES: Mapping[str, Callable[[object], bool]] = {
    "WelcomeCardQuestions": _string_list,
    "WelcomeCardEnable": _switch,
    "WelcomeCardTitle": _string,
    "ToAgentEnable": _switch,
    "DirectAnsweringReaches": _threshold,
    "ChitchatEnable": _switch,
    "ChitchatReaches": _threshold,
    "ClarifyEnable": _switch,
    "ClarifyReaches": _threshold,
    "ClarifyMessage": _string,
    "ClarifyNumber": lambda value: _positive(value) or value == 0,
    "FallbackMsg": _string,
}


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
    """Tencent Desk's chatbot APIs on a loopback port, with fault injection.

    The starting state is `sample` (a name in `SAMPLES`, or a `Sample`); `languages`,
    `faq` (tag -> questions), `settings` (tag -> Desk's `desc_robot_config` fields, over
    the configured defaults), `language_limit` and `multilingual` replace its parts.

    The injected `clock` is the emulator's "now" everywhere: UserSig expiry, the
    rate-limit window and `CallRecord.at`.
    """

    def __init__(
        self,
        *,
        sdkappid: int = SANDBOX_SDKAPPID,
        key: str = SANDBOX_KEY,
        admins: Sequence[str] = SANDBOX_ADMINS,
        sample: str | Sample = "default",
        languages: object = _FROM_SAMPLE,
        faq: Mapping[str, Sequence[FaqQuestion | Mapping[str, Any]]] | None = None,
        settings: Mapping[str, Mapping[str, Any]] | None = None,
        language_limit: int | None = None,
        multilingual: bool | None = None,
        rate_limit: int = 5,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if rate_limit < 0:
            raise ValueError("rate_limit must not be negative")
        chosen = SAMPLES[sample] if isinstance(sample, str) else sample
        self.sdkappid = sdkappid
        self.admins = tuple(admins)
        self.rate_limit = rate_limit
        self.language_limit = chosen.language_limit if language_limit is None else language_limit
        self.multilingual = chosen.multilingual if multilingual is None else multilingual
        self._key = key
        self._address = (host, port)
        self._clock = clock
        self._lock = threading.Lock()
        self._languages: Any = _OMIT
        self._faq: dict[str, list[FaqQuestion]] = {}
        self._settings: dict[str, dict[str, Any]] = {}
        self._faults: deque[list[Any]] = deque()  # [Fault, remaining uses or -1]
        self._calls: list[_Call] = []
        # Arrival times of admitted calls inside the rate window, per API (each has its own 5/s).
        self._accepted: defaultdict[str, deque[float]] = defaultdict(deque)
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None
        self.set_languages(list(chosen.languages) if languages is _FROM_SAMPLE else languages)
        for tag in self._tags():
            self.set_settings(tag, {**CONFIGURED_SETTINGS, **chosen.settings.get(tag, {})})
        for tag, questions in {**chosen.faq, **(faq or {})}.items():
            self.set_faq(tag, questions)
        for tag, fields in (settings or {}).items():
            self.set_settings(tag, fields)

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
        The writes add and delete items of a list of objects; on another shape they fail.
        """
        if items is None:
            payload: Any = _OMIT
        elif isinstance(items, list | tuple) and all(_is_pair(item) for item in items):
            payload = [{"LanguageTag": tag, "IsDefault": flag} for tag, flag in items]
        else:
            payload = copy.deepcopy(items)
        with self._lock:
            self._languages = payload

    @property
    def languages(self) -> list[tuple[str, int]]:
        """The languages now, as `(tag, is_default)` pairs (an odd shape gives what it can)."""
        with self._lock:
            items = self._items()
            return [(_tag_of(item), int(_is_default(item))) for item in items or []]

    def set_faq(self, tag: str, questions: Iterable[FaqQuestion | Mapping[str, Any]]) -> None:
        """Replace the FAQ library of the language `tag` (questions, or dicts in Desk's field names)."""
        if not isinstance(tag, str):
            raise ValueError("LanguageTag must be a string")
        made = _questions(questions)
        with self._lock:
            self._faq[tag] = made

    def set_settings(self, tag: str, fields: Mapping[str, Any]) -> None:
        """Change `desc_robot_config` fields of the language `tag` (Desk's field names)."""
        if not isinstance(tag, str) or not isinstance(fields, Mapping):
            raise ValueError("send a LanguageTag string and an object of settings")
        with self._lock:
            self._settings.setdefault(tag, dict(NEW_LANGUAGE_SETTINGS)).update(copy.deepcopy(dict(fields)))

    def set_edition(self, *, multilingual: bool | None = None, language_limit: int | None = None) -> None:
        """Switch multilingual support (off: adding a language is -50042) or change the language limit."""
        if multilingual is not None and not isinstance(multilingual, bool):
            raise ValueError("multilingual must be true or false")
        if language_limit is not None and not _positive(language_limit):
            raise ValueError("language_limit must be a positive integer")
        with self._lock:
            if multilingual is not None:
                self.multilingual = multilingual
            if language_limit is not None:
                self.language_limit = language_limit

    def inject(self, fault: Fault, times: int = 1) -> None:
        """Queue `fault` for the next `times` Desk calls (of its API, if it names one; FIFO);
        `times=-1` keeps it until cleared."""
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

    def calls_of(self, api: str) -> list[CallRecord]:
        """The recorded calls of one API (e.g. "robot_add_language")."""
        return [call for call in self.calls if call.api == api]

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def max_calls_in_window(self, window: float = 1.0, api: str | None = None) -> int:
        """The most Desk calls (of `api`, when given) that arrived within any `window` seconds
        (half-open windows)."""
        with self._lock:
            arrivals = [call.at for call in self._calls if api is None or call.api == api]
        return max_in_window(arrivals, window)

    # --- the Desk endpoint ---------------------------------------------------------------------
    def _desk(
        self, method: str, path: str, raw_query: str, body: bytes | None, arrived: float
    ) -> _Answer | None:
        """Answer one Desk call (body None: unreadable); None means: close without an answer
        (stopped mid-hang, or a dropped answer)."""
        command = path.removeprefix(SERVICE_PATH)
        api = command if path.startswith(SERVICE_PATH) and command in APIS else ""
        call = _Call(arrived, raw_query, b"" if body is None else body, api)
        with self._lock:
            self._calls.append(call)
            fault = self._next_fault(api)
        if fault is not None:
            if fault.hang:
                self._settle(call, "hang")
                if self._stopping.wait(fault.hang):
                    return None
            faulty = self._fault_answer(fault, call)
            if faulty is not None:
                return faulty
        answer = self._handle(method, path, api, raw_query, body, call)
        if fault is None:
            return answer
        if fault.late and self._stopping.wait(fault.late):
            return None
        if fault.drop:
            return None
        if fault.truncated:
            return _Answer(answer.status, answer.content_type, answer.body[: len(answer.body) // 2])
        return answer

    def _handle(
        self, method: str, path: str, api: str, raw_query: str, body: bytes | None, call: _Call
    ) -> _Answer:
        payload: dict[str, Any] = {}
        if body is None:
            code, info = 60002, "HTTP request could not be parsed"
        else:
            code, info, payload = self._check(method, path, raw_query, body)
        if code == 0:
            code, info = self._admit(api)
        fields: dict[str, Any] = {}
        if code == 0:
            with self._lock:  # one state change at a time, as Desk's own store would
                code, info, fields = self._apis[api](self, payload)
        self._settle(call, code)
        return self._success(fields) if code == 0 else self._failure(code, info)

    def _next_fault(self, api: str) -> Fault | None:
        """Pop one use of the first queued fault for this call's API. Caller holds the lock."""
        for index, entry in enumerate(self._faults):
            fault = cast(Fault, entry[0])
            if fault.api is not None and fault.api != api:
                continue
            if entry[1] > 0:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._faults[index]
            return fault
        return None

    def _fault_answer(self, fault: Fault, call: _Call) -> _Answer | None:
        """An answer instead of the call, or None to handle it (then damage the answer)."""
        if fault.http_status is not None:
            self._settle(call, f"http-{fault.http_status}")
            return _html_answer(fault.http_status)
        if fault.code is not None:
            self._settle(call, fault.code)
            return self._failure(fault.code, fault.error_info or "injected error")
        if fault.truncated:
            self._settle(call, "truncated")
        elif fault.drop:
            self._settle(call, "dropped")
        elif fault.late:
            self._settle(call, "late")
        return None

    def _settle(self, call: _Call, outcome: int | str) -> None:
        """Record the outcome once: a call that hung stays "hang" whatever it then answered."""
        with self._lock:
            if call.outcome == "pending":
                call.outcome = outcome

    def _check(self, method: str, path: str, raw_query: str, body: bytes) -> tuple[int, str, dict[str, Any]]:
        """Validate a call in Tencent's order; (0, "", body object) when it may proceed."""
        command = path.removeprefix(SERVICE_PATH)
        if not path.startswith(SERVICE_PATH) or command not in APIS:
            return 60009, "request path is wrong", {}
        if method != "POST":
            return 60009, "request method must be POST", {}
        raw = _parse_query(raw_query)

        def param(name: str) -> str | None:
            value = raw.get(name)
            return None if value is None else unquote(value)

        def refuse(code: int, info: str) -> tuple[int, str, dict[str, Any]]:
            return code, info, {}

        sdkappid = param("sdkappid")
        if not sdkappid:
            return refuse(60012, "sdkappid is missing")
        if _uint(sdkappid) != self.sdkappid:
            return refuse(70020, "sdkappid does not exist")
        identifier = param("identifier")
        if identifier is None or not _IDENTIFIER.fullmatch(identifier):
            return refuse(-7, "identifier is missing or invalid")
        usersig = raw.get("usersig")  # Tencent reads it undecoded
        if not usersig:
            return refuse(70002, "usersig is empty")
        if "%" in usersig:
            return refuse(70003, "usersig could not be parsed (it must not be URL-encoded)")
        try:
            claims = verify_usersig(usersig, sdkappid=self.sdkappid, key=self._key, now=self._clock())
        except InvalidUserSig as failure:
            return refuse(*_SIG_FAILURES.get(str(failure.args[0]), (70003, "usersig could not be parsed")))
        if claims.identifier != identifier:
            return refuse(70013, "identifier does not match the one in usersig")
        if identifier not in self.admins:
            return refuse(-20, "identifier is not an App admin")
        random = _uint(param("random"))
        if random is None or random > MAX_RANDOM:
            return refuse(-7, "random must be an integer from 0 to 4294967295")
        if param("contenttype") != "json":
            return refuse(-7, "contenttype must be json")
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            return refuse(-7, "request body is not valid JSON")
        if not isinstance(payload, dict):
            return refuse(-7, "request body must be a JSON object")
        return 0, "", payload

    def _admit(self, api: str) -> tuple[int, str]:
        """Sliding-window rate limit per API; only admitted calls take a place in the window."""
        with self._lock:
            now = self._clock()
            accepted = self._accepted[api]
            while accepted and accepted[0] <= now - RATE_WINDOW:
                accepted.popleft()
            if len(accepted) >= self.rate_limit:
                return -14, f"over this API's limit of {self.rate_limit} calls per second"
            accepted.append(now)
        return 0, ""

    def _success(self, fields: Mapping[str, Any]) -> _Answer:
        payload: dict[str, Any] = {"ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0, **fields}
        payload["RequestId"] = str(uuid.uuid4())
        return _json_answer(payload)

    @staticmethod
    def _failure(code: int, info: str) -> _Answer:
        # An injected code 0 also comes here: "FAIL" with ErrorCode 0 is an odd shape worth testing.
        return _json_answer(
            {"ActionStatus": "FAIL", "ErrorInfo": info, "ErrorCode": code, "RequestId": str(uuid.uuid4())}
        )

    # --- the APIs (called with the lock held) ---------------------------------------------------
    def _items(self) -> list[dict[str, Any]] | None:
        """The language objects the writes can change, or None when `Languages` has another shape."""
        languages = self._languages
        if isinstance(languages, list) and all(isinstance(item, dict) for item in languages):
            return cast(list[dict[str, Any]], languages)
        return None

    def _tags(self) -> list[str]:
        with self._lock:
            return [_tag_of(item) for item in self._items() or []]

    def _resolve(self, tag: object) -> str | None:
        """The language a readiness call is about: its tag, or the default's when it is empty or
        missing (docs/desk-api.md §9); None when the chatbot has no such language."""
        items = self._items() or []
        if tag is None or tag == "":
            default = next((item for item in items if _is_default(item)), None)
            return _tag_of(default) if default is not None else ""
        return tag if isinstance(tag, str) and any(_tag_of(item) == tag for item in items) else None

    def _list_languages(self, payload: dict[str, Any]) -> _Handled:
        return 0, "", {} if self._languages is _OMIT else {"Languages": copy.deepcopy(self._languages)}

    def _add_language(self, payload: dict[str, Any]) -> _Handled:
        tag = payload.get("LanguageTag")
        if not isinstance(tag, str) or not tag:
            return -7, "LanguageTag must be a non-empty string", {}
        if not self.multilingual:
            return -50042, "this Desk edition does not support multiple languages", {}
        if tag not in SUPPORTED_TAGS:
            return -50051, f"language {tag} is not supported", {}
        items = self._items()
        if items is None:
            return 141002, "the emulator's Languages are not a list of objects", {}
        if any(_tag_of(item) == tag for item in items):
            return 0, "", {}  # already there: Tencent's answer to this is unconfirmed; nothing changes
        if len(items) >= self.language_limit:
            return -50052, f"this edition allows {self.language_limit} languages, the default included", {}
        items.append({"LanguageTag": tag, "IsDefault": 0})
        self._faq[tag] = []
        self._settings[tag] = copy.deepcopy(dict(NEW_LANGUAGE_SETTINGS))
        return 0, "", {}

    def _del_language(self, payload: dict[str, Any]) -> _Handled:
        tag = payload.get("LanguageTag")
        if not isinstance(tag, str):
            return -7, "LanguageTag must be a string", {}
        items = self._items()
        if items is None:
            return 141002, "the emulator's Languages are not a list of objects", {}
        found = [item for item in items if _tag_of(item) == tag]
        if not found:
            return 0, "", {}  # not there: Tencent's answer to this is unconfirmed; nothing changes
        if any(_is_default(item) for item in found):
            return -50055, "the default language cannot be deleted", {}
        if self._faq.get(tag):
            return -50056, "the language still has questions and cannot be deleted", {}
        items[:] = [item for item in items if _tag_of(item) != tag]
        self._faq.pop(tag, None)
        self._settings.pop(tag, None)
        return 0, "", {}

    def _list_faq(self, payload: dict[str, Any]) -> _Handled:
        index, size, status = payload.get("PageIndex"), payload.get("PageSize"), payload.get("Status")
        if not _positive(index) or not _positive(size):
            return -7, "PageIndex and PageSize must be integers greater than 0", {}
        if status is not None and status not in (4, 5):
            return -7, "Status must be 4 (in effect) or 5 (disabled)", {}
        keyword, category = payload.get("Question"), payload.get("CategoryId")
        if keyword is not None and not isinstance(keyword, str):
            return -7, "Question must be a string", {}
        if category is not None and (isinstance(category, bool) or not isinstance(category, int)):
            return -7, "CategoryId must be an integer", {}
        tag = self._resolve(payload.get("LanguageTag"))
        matched = [
            (number, question)
            for number, question in enumerate(self._faq.get(tag, []) if tag is not None else [], start=1)
            if (status is None or question.status == status)
            and (keyword is None or keyword in question.question)
            and (category is None or question.category_id == category)
        ]
        start = (cast(int, index) - 1) * cast(int, size)
        page = [question.to_desk(f"{tag or 'default'}-{number}") for number, question in matched[start:][:size]]
        return 0, "", {
            "AllQuestionCount": sum(1 + len(question.similar) for _, question in matched),
            "StandardQuestionCount": len(matched),
            "QuestionList": page,
        }

    def _desc_robot_config(self, payload: dict[str, Any]) -> _Handled:
        tag = payload.get("LanguageTag")
        if tag is not None and not isinstance(tag, str):
            return -7, "LanguageTag must be a string", {}
        resolved = self._resolve(tag)
        if resolved is None:
            return 141004, f"language {tag} is not a language of this chatbot", {}
        return 0, "", copy.deepcopy(self._settings.get(resolved, dict(NEW_LANGUAGE_SETTINGS)))

    def _update_robot_config(self, payload: dict[str, Any]) -> _Handled:
        tag = payload.get("LanguageTag")
        if tag is not None and not isinstance(tag, str):
            return -7, "LanguageTag must be a string", {}
        resolved = self._resolve(tag)
        if resolved is None:
            return 141004, f"language {tag} is not a language of this chatbot: add it first", {}
        changes = {name: payload[name] for name in _SETTING_TYPES if name in payload}
        for name, value in changes.items():
            if not _SETTING_TYPES[name](value):
                return -7, f"{name} has the wrong type", {}
        if len(changes.get("WelcomeCardQuestions", ())) > WELCOME_CARD_QUESTION_LIMIT:
            return 141004, f"the welcome card takes at most {WELCOME_CARD_QUESTION_LIMIT} questions", {}
        # Omitted fields keep their values (the module docstring says why that is a choice).
        self._settings.setdefault(resolved, dict(NEW_LANGUAGE_SETTINGS)).update(copy.deepcopy(changes))
        return 0, "", {}

    _apis: Mapping[str, Callable[[DeskEmulator, dict[str, Any]], _Handled]] = {
        LIST: _list_languages,
        ADD: _add_language,
        DELETE: _del_language,
        FAQ: _list_faq,
        CONFIG: _desc_robot_config,
        UPDATE_CONFIG: _update_robot_config,
    }

    # --- the control API -----------------------------------------------------------------------
    def _control(self, method: str, path: str, body: bytes) -> _Answer:
        routes: dict[str, dict[str, Callable[[Any], Any]]] = {
            "/_emulator/faults": {"POST": self._control_inject, "DELETE": lambda _: self.clear_faults()},
            "/_emulator/languages": {"PUT": self.set_languages, "GET": lambda _: self.languages},
            "/_emulator/faq": {"PUT": lambda data: self.set_faq(*_tagged(data, "Questions", list))},
            "/_emulator/settings": {"PUT": lambda data: self.set_settings(*_tagged(data, "Settings", dict))},
            "/_emulator/edition": {"PUT": lambda data: self.set_edition(**_object(data))},
            "/_emulator/calls": {
                "GET": lambda _: [
                    {"at": c.at, "outcome": c.outcome, "api": c.api, "body": c.body.decode("utf-8", "replace"),
                     "identifier": c.identifier}
                    for c in self.calls  # the body holds no secret: the UserSig is in the query string
                ],
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
        fields = _object(data)
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


def serve_forever_cli(
    port: int, host: str = "127.0.0.1", sample: str | None = None, app_index: int = 0, admins: Sequence[str] = (),
) -> None:
    """Run the emulator in the foreground until Ctrl-C or SIGTERM: the `app_index`-th emulated
    app (its own SDKAppID and key, `sandbox_identity`), starting from `sample` when given, else
    from that app's own list (`sample_for_app`). `admins` are Desk admin identifiers it accepts
    besides `SANDBOX_ADMINS` (a second client with its own DESK_<APP>_IDENTIFIER).

    Prints one line whose last word is the base URL, for scripts to read.
    """
    sdkappid, key = sandbox_identity(app_index)
    accepted = (*SANDBOX_ADMINS, *(admin for admin in admins if admin not in SANDBOX_ADMINS))
    if sample is not None:
        emulator = DeskEmulator(host=host, port=port, sdkappid=sdkappid, key=key, sample=sample,
                                admins=accepted).start()
    else:
        emulator = DeskEmulator(host=host, port=port, sdkappid=sdkappid, key=key, admins=accepted,
                                languages=sample_for_app(app_index)).start()
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
