"""Logging set-up, with redaction so that no secret reaches any log line.

Secrets leak into logs through channels we do not control (docs/slack-platform.md §12):
urllib3 logs full request URLs, which carry the UserSig; exception texts repeat
them; tenacity logs `str(exc)`. Redaction therefore happens where every record is
made (a log record factory), so it covers every handler, including ones added
later by the HTTP server or by pytest, and the rendered traceback text as well.

What is redacted: every registered secret value (the settings' credentials), and
anything shaped like a credential: `usersig=`/`sig=`/`token=`/`key=` query values,
Slack tokens, passwords in redis:// or postgres:// URLs.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Iterable
from typing import Any

REDACTED = "<redacted>"
_PATTERNS = (
    (re.compile(r"(?i)([?&](?:usersig|sig|token|key|secret|password)=)[^&\s'\"]+"), rf"\1{REDACTED}"),
    (re.compile(r"\bx(?:ox[abprse]|app)-[A-Za-z0-9-]+"), REDACTED),
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@"), rf"\1{REDACTED}@"),
)
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_installed = False


def register_secrets(values: Iterable[str]) -> None:
    """Add values that must never appear in a log line (short values are ignored)."""
    with _secrets_lock:
        _secrets.update(v for v in values if v and len(v) >= 6)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    # Longest first, so a secret that contains another is removed whole.
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


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
        record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact(formatter.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return record

    logging.setLogRecordFactory(redacting_factory)


def configure_logging(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    """One stderr handler, one format, redaction on; quiet chatty libraries."""
    register_secrets(secrets)
    install_redaction()
    root = logging.getLogger()
    if not any(getattr(h, "_desk_bot", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._desk_bot = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    # urllib3 logs every request URL at DEBUG; keep it at WARNING unless asked for.
    logging.getLogger("urllib3").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
