"""Logging set-up, with redaction so that no secret reaches any log line.

Secrets leak into logs through channels we do not control (docs/slack-platform.md §12):
urllib3 logs full request URLs, which carry the UserSig; exception texts repeat
them; tenacity logs `str(exc)`; Bolt logs request bodies at DEBUG. Redaction
therefore happens where every record is made (a log record factory), so it covers
every handler, including ones added later by the HTTP server or by pytest, and the
rendered traceback text as well.

What is redacted: every registered secret value (the settings' credentials), and
anything shaped like a credential: `usersig=`/`sig=`/`token=`/`key=`/`secret=`/
`password=` values wherever the name is not the end of a longer one (`api_key=`), so
a Slack form body `token=…&team_id=…` is covered, Slack tokens (`xoxb-…`),
passwords in `scheme://user:password@host` URLs, and the path of a Slack
`hooks.slack.com` URL (a `response_url` or a webhook is a bearer credential: only
its scheme and host are kept), percent- or JSON-escaped as it is in bodies too.

Linear time on any input: a log line may carry text an attacker chose (a slash
command's text, a poisoned cache value), so redaction must not be a denial of
service. Text longer than `MESSAGE_LIMIT` is cut before the patterns run, with a
visible `… [cut N characters]`, and every pattern starts at a literal (`://`, a
keyword, `xox`, `hooks.slack`) and then either takes a run that cannot fail once
it has one character, or looks at most 256 + 1024 characters ahead and never past
the next `://` — so no character is scanned by more than a few attempts.

Cutting never lets part of a secret through: registered secrets are replaced in
the whole text first (`str.replace`, linear), and a URL password cut before its
`@` is recognised at the cut. A replacement could, in contrived cases, join its
neighbours into a registered secret again: the result is checked, and a line that
cannot be made safe is logged as `<redacted>` alone.

Forged lines: the message part of a record has its line breaks (`\\r`, `\\n` and the
other characters `str.splitlines` breaks on) escaped, so text from a user cannot
start a line that looks like one of ours. Tracebacks and stack traces are kept
multi-line: they are many lines by nature, come after the message of the record
that carries them, and are unreadable on one line; a platform that needs strictly
one record per line should set LOG_FORMAT=json.

JSON logs (`LOG_FORMAT=json`, python-json-logger): one object a line with `time`, `level`,
`logger`, `message` and, while a Slack request is handled, its context (`REQUEST_FIELDS`:
the short `slack_request_id` the bot gives each request, and the Desk `app`, `channel`,
`user` and `command` where known). Every value is redacted again as the line is made, so a
secret in an `extra=` field or a traceback is covered as in text. The text format shows the
request id as `[req=…]`.

The request context lives in a contextvar (`bind_request`), set when Bolt starts on a
request; lazy listeners get a copy of it (bot/slack/bolt_app.py hands the context to the executor).
"""

from __future__ import annotations

import contextvars
import logging
import re
import secrets
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

REDACTED = "<redacted>"
MESSAGE_LIMIT = 8 * 1024  # characters of one log message kept
TRACEBACK_LIMIT = 64 * 1024  # a traceback has many more lines; cut at its end too, with the same marker

_KEYWORD = r"(?:usersig|sig|token|key|secret|password)"
# A URL's user part and its password, up to the token's last `@` (a password with an unencoded `@`
# goes whole). Both stop before the next `://`, so no character is part of two attempts.
_URL_USER = r"(://[^:/@\s]{0,256}+:)"
_URL_AFTER_USER = r"(?:(?!://)[^\s'\"]){1,1024}"
_PATTERNS = (
    # `?token=…`, `&sig=…`, `token=…&team_id=` (a form body), ` key=…`; not `api_key=`.
    (re.compile(rf"(?i)((?<![\w-]){_KEYWORD}=)[^&\s'\"]++"), rf"\1{REDACTED}"),
    (re.compile(r"\bx(?:ox[abprse]|app)-[A-Za-z0-9-]++"), REDACTED),
    (re.compile(rf"{_URL_USER}{_URL_AFTER_USER}@"), rf"\1{REDACTED}@"),
    # https://hooks.slack.com/commands/T…/…/… (also https%3A%2F%2Fhooks.slack.com%2F… and https:\/\/…)
    (re.compile(r"(?i)(hooks\.slack(?:-gov)?\.com)(?:/|\\/|%2F|%5C%2F)[^\s&'\"<>]++"), rf"\1/{REDACTED}"),
)
# Where a text was cut: a URL password whose `@` was cut off.
_URL_PASSWORD_AT_CUT = re.compile(rf"{_URL_USER}{_URL_AFTER_USER}\Z")
# What `str.splitlines` breaks on; \r and \n as themselves, the others by code point.
_LINE_BREAKS = {ord("\n"): "\\n", ord("\r"): "\\r"}
_LINE_BREAKS.update({ord(c): f"\\x{ord(c):02x}" for c in "\x0b\x0c\x1c\x1d\x1e\x85"})
_LINE_BREAKS.update({ord(c): f"\\u{ord(c):04x}" for c in "\u2028\u2029"})

REQUEST_FIELDS = ("slack_request_id", "app", "channel", "user", "command")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(request_tag)s%(message)s"
_FIELD_VALUE = re.compile(r"[A-Za-z0-9_./-]{1,40}")  # ids and names; anything else is not logged
_request: ContextVar[dict[str, str] | None] = ContextVar("desk_bot_request", default=None)

_secrets: tuple[str, ...] = ()  # longest first, so a secret that contains another is removed whole
_secrets_lock = threading.Lock()
_installed = False


def register_secrets(values: Iterable[str]) -> None:
    """Add values that must never appear in a log line.

    Values shorter than 6 characters are ignored (they would redact ordinary words), and
    so are parts of the marker `<redacted>` itself, which no redaction could hide.
    """
    global _secrets
    with _secrets_lock:
        known = set(_secrets)
        known.update(v for v in values if v and len(v) >= 6 and v not in REDACTED)
        _secrets = tuple(sorted(known, key=len, reverse=True))


def _replace_secrets(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact(text: str, *, limit: int | None = MESSAGE_LIMIT, one_line: bool = False) -> str:
    """`text` without secrets, cut to `limit` characters (None: not cut), in linear time.
    `one_line` also escapes its line breaks (see the module's docstring)."""
    secrets = _secrets
    text = _replace_secrets(text, secrets)  # in the whole text: a secret across the cut goes whole
    cut = len(text) - limit if limit is not None and len(text) > limit else 0
    if cut:
        text = text[:limit]
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    if cut:
        text = _URL_PASSWORD_AT_CUT.sub(rf"\1{REDACTED}", text)
    if one_line:
        text = text.translate(_LINE_BREAKS)
    if cut:
        text += f"… [cut {cut} characters]"
    for _ in range(3):
        # What was put in (markers, escapes) can complete a secret with its neighbours, with
        # contrived secrets only: replace again, and give up on the line if that never ends.
        if not any(secret in text for secret in secrets):
            return text
        text = _replace_secrets(text, secrets)
    return REDACTED


def new_request_id() -> str:
    return secrets.token_hex(4)


@contextmanager
def bind_request(**fields: str | None) -> Iterator[dict[str, str]]:
    """Within the block, every log record carries these request fields (of `REQUEST_FIELDS`).
    Values that are not plain ids or names are dropped: user text never becomes a field."""
    kept = {k: v for k, v in fields.items() if k in REQUEST_FIELDS and v and _FIELD_VALUE.fullmatch(v)}
    token = _request.set(kept)
    try:
        yield kept
    finally:
        _request.reset(token)


def request_fields() -> dict[str, str]:
    return dict(_request.get() or {})


def install_redaction() -> None:
    """Wrap the log record factory once per process so every record is redacted."""
    global _installed
    if _installed:
        return
    _installed = True
    make_record = logging.getLogRecordFactory()
    formatter = logging.Formatter()

    def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001  a broken format string must not break logging
            message = str(record.msg)
        record.msg, record.args = redact(message, one_line=True), None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact(formatter.formatException(record.exc_info), limit=TRACEBACK_LIMIT)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, limit=TRACEBACK_LIMIT)
        fields = _request.get()
        if fields:
            record.__dict__.update(fields)
        return record

    logging.setLogRecordFactory(redacting_factory)


class TextFormatter(logging.Formatter):
    """The text format, with `[req=…]` before the message while a Slack request is handled."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "slack_request_id", None)
        record.request_tag = f"[req={request_id}] " if request_id else ""
        return super().format(record)


class RedactingJsonFormatter(JsonFormatter):
    """python-json-logger's formatter, every value redacted (extras and tracebacks included)."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            reserved_attrs=[*RESERVED_ATTRS, "request_tag"],
        )

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {key: _redact_value(key, value) for key, value in log_data.items()}


def _redact_value(key: str, value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_redact_value(key, item) for item in value]
    if isinstance(value, dict):
        return {str(k): _redact_value(str(k), v) for k, v in value.items()}
    if key in ("exc_info", "stack_info"):
        return redact(str(value), limit=TRACEBACK_LIMIT)
    return redact(str(value), one_line=True)


def configure_logging(level: str = "INFO", secrets: Iterable[str] = (), log_format: str = "text") -> None:
    """One stderr handler, one format (text or json), redaction on; quiet chatty libraries."""
    register_secrets(secrets)
    install_redaction()
    root = logging.getLogger()
    formatter = RedactingJsonFormatter() if log_format == "json" else TextFormatter()
    ours: list[logging.Handler] = [h for h in root.handlers if getattr(h, "_desk_bot", False)]
    if not ours:
        stream = logging.StreamHandler(sys.stderr)
        stream._desk_bot = True  # type: ignore[attr-defined]
        root.addHandler(stream)
        ours = [stream]
    for ours_handler in ours:
        ours_handler.setFormatter(formatter)
    root.setLevel(level)
    # urllib3 logs every request URL at DEBUG; keep it at WARNING unless asked for.
    logging.getLogger("urllib3").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)


_T = TypeVar("_T")


class ContextExecutor(ThreadPoolExecutor):
    """A thread pool whose tasks run in a copy of the submitter's contextvars: the request's log
    context (request id, app, user) follows the work into the thread that does it. A task that
    raises is logged (a plain pool keeps the exception in a Future nobody reads)."""

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        return super().submit(contextvars.copy_context().run, _logging_failure, fn, *args, **kwargs)


def _logging_failure(fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
    """`fn(…)`, its failure logged in the submitter's log context, then raised into the Future."""
    try:
        return fn(*args, **kwargs)
    except Exception as error:
        logging.getLogger(__name__).error("background work failed: %s", type(error).__name__, exc_info=True)
        raise
