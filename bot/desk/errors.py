"""Every way a Desk call can fail, as one `DeskError` that says what to do about it.

Each Desk `ErrorCode` (the API's private codes, the common 60xxx/70xxx codes and
Desk's 141xxx codes) and each transport failure maps to a catalogue entry with
Tencent's meaning, a hint written for the operator who has to fix it, and a
retry class that tells the client whether and how to try again. Unknown codes
fall back to a generic entry that still shows Tencent's own `ErrorInfo`.

Nothing here ever includes a request URL: it carries the UserSig.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bot.desk.languages import ADVANCED_EDITION_LANGUAGE_LIMIT, SUPPORTED_TAGS


class TransportCode(StrEnum):
    """Codes of failures that never reached Desk's envelope (Desk's own codes are integers).

    An enum, so that a misspelt code is a type error instead of a comparison that is never true.
    """

    CONNECTION_FAILED = "connection-failed"
    CONNECTION_LOST = "connection-lost"
    CONNECT_TIMEOUT = "connect-timeout"
    READ_TIMEOUT = "read-timeout"
    TLS_ERROR = "tls-error"
    HTTP_GATEWAY = "http-gateway"
    HTTP_STATUS = "http-status"
    BAD_RESPONSE = "bad-response"
    LOCAL_RATE_LIMIT = "local-rate-limit"
    COOL_DOWN = "cool-down"


class RetryClass(StrEnum):
    RATE_LIMITED = "rate-limited"  # back off >= 1 s with jitter; bounded
    TRANSIENT = "transient"  # exponential backoff, capped, bounded
    TRANSIENT_ONCE = "transient-once"  # one more try, then escalate
    RESIGN_ONCE = "re-sign-once"  # mint a new UserSig and retry exactly once
    COOL_DOWN = "cool-down-60s"  # no retry for at least 60 s
    PERMANENT = "permanent"  # fail at once


@dataclass(frozen=True)
class ErrorSpec:
    code: int | TransportCode
    meaning: str
    hint: str
    retry: RetryClass


class DeskError(Exception):
    """A failed Desk call: code, Tencent's meaning, what to do, and whether retrying helps.

    `code` is Desk's integer `ErrorCode`, or a short string for failures that never
    reached Desk's envelope (`read-timeout`, `http-502`, …). `str()` is safe to log
    and to show: it never contains the request URL or any credential.
    """

    def __init__(
        self,
        spec: ErrorSpec,
        *,
        error_info: str = "",
        request_id: str | None = None,
        detail: str = "",
    ) -> None:
        self.spec = spec
        self.error_info = error_info
        self.request_id = request_id
        self.detail = detail
        super().__init__(self._text())

    @property
    def code(self) -> int | TransportCode:
        return self.spec.code

    @property
    def meaning(self) -> str:
        return self.spec.meaning

    @property
    def hint(self) -> str:
        return self.spec.hint

    @property
    def retry(self) -> RetryClass:
        return self.spec.retry

    @property
    def is_transport(self) -> bool:
        return isinstance(self.spec.code, TransportCode)

    def _text(self) -> str:
        parts = [f"Desk error {self.spec.code}: {self.spec.meaning}"]
        if self.error_info and self.error_info != self.spec.meaning:
            parts.append(f"(Tencent says: {self.error_info})")
        if self.detail:
            parts.append(f"({self.detail})")
        return " ".join(parts)

    def __reduce__(self):  # type: ignore[no-untyped-def]  # keep pickling (multiprocessing) working
        return (_rebuild, (self.spec, self.error_info, self.request_id, self.detail))


def _rebuild(spec: ErrorSpec, error_info: str, request_id: str | None, detail: str) -> DeskError:
    return DeskError(spec, error_info=error_info, request_id=request_id, detail=detail)


R = RetryClass
T = TransportCode
_MAINTAINERS = "This is a bug in the bot: send the time of the error to the bot's maintainers."
_TRANSIENT = "Temporary Tencent-side problem; the bot retries. If it persists, check Tencent Cloud's status."
_ADMIN = (
    "Set DESK_IDENTIFIER to an App admin account (Chat console → Account Management), "
    "or make the configured account an admin."
)

_DESK_CODES: tuple[ErrorSpec, ...] = (
    # --- private codes of robot_get_language_list -------------------------------------
    ErrorSpec(-7, "Request parameters or JSON could not be parsed", _MAINTAINERS, R.PERMANENT),
    ErrorSpec(
        -14,
        "Over this API's limit of 5 calls per second",
        "Wait a few seconds and try again. If it keeps happening, another tool is calling Desk "
        "with the same SDKAppID: find it, or lower DESK_RATE_LIMIT so that together you stay under 5/s.",
        R.RATE_LIMITED,
    ),
    ErrorSpec(-20, "The caller is not an App admin", _ADMIN, R.PERMANENT),
    ErrorSpec(
        -50003,
        "Desk resource invalid",
        "The Desk subscription or resources for this app have lapsed. Check the Desk package and "
        "billing in the Cloud Contact Center console.",
        R.PERMANENT,
    ),
    ErrorSpec(
        -50040,
        "Desk is not enabled",
        "Desk is not enabled for this SDKAppID. Enable Desk in the Cloud Contact Center console, "
        "or check that DESK_SDKAPPID is the Desk app's SDKAppID.",
        R.PERMANENT,
    ),
    # --- private codes of robot_add_language and robot_del_language (docs/desk-api.md §8) -----
    ErrorSpec(
        -50042,
        "This Desk edition does not support several languages",
        "Only the advanced edition (高级版) of Desk serves several languages. Upgrade the app's Desk "
        "package in the Cloud Contact Center console, then add the language again.",
        R.PERMANENT,
    ),
    ErrorSpec(
        -50051,
        "The language is not supported",
        f"Desk's chatbot supports only these language tags: {', '.join(SUPPORTED_TAGS)}. "
        "Use one of them, exactly as written.",
        R.PERMANENT,
    ),
    ErrorSpec(
        -50052,
        "Over the number of languages this edition allows",
        f"The advanced edition (高级版) allows {ADVANCED_EDITION_LANGUAGE_LIMIT} languages, the default "
        "language included. Delete a language you no longer need before adding another.",
        R.PERMANENT,
    ),
    ErrorSpec(
        -50055,
        "The default language cannot be deleted",
        "Make another language the default in the Desk console first, then delete this one.",
        R.PERMANENT,
    ),
    ErrorSpec(
        -50056,
        "The language still has FAQ questions",
        "Delete the language's questions, or move them to another language, in the console's knowledge "
        "base (FAQ) first, then delete the language.",
        R.PERMANENT,
    ),
    # --- common codes: 60xxx ---------------------------------------------------------------
    ErrorSpec(60002, "HTTP request could not be parsed", _MAINTAINERS, R.PERMANENT),
    ErrorSpec(60003, "Request JSON invalid", _MAINTAINERS, R.PERMANENT),
    ErrorSpec(
        60004,
        "Identifier or UserSig wrong",
        "Check DESK_IDENTIFIER and DESK_SECRET_KEY (or DESK_USERSIG): neither may be blank or truncated, "
        "and the key must be this SDKAppID's key from the Chat console.",
        R.PERMANENT,
    ),
    ErrorSpec(
        60005,
        "Identifier or UserSig wrong",
        "Check DESK_IDENTIFIER and DESK_SECRET_KEY (or DESK_USERSIG): neither may be blank or truncated.",
        R.PERMANENT,
    ),
    ErrorSpec(
        60006,
        "SDKAppID invalid",
        "Compare DESK_SDKAPPID with the SDKAppID shown in the Chat console.",
        R.PERMANENT,
    ),
    ErrorSpec(
        60007,
        "REST call rate over the limit",
        "Tencent throttled the app's REST calls; the bot retries. If it persists, reduce how often "
        "the bot or other tools call Tencent with this SDKAppID.",
        R.RATE_LIMITED,
    ),
    ErrorSpec(60008, "Service timeout or bad request format", _TRANSIENT, R.TRANSIENT),
    ErrorSpec(60009, "Request path wrong", _MAINTAINERS, R.PERMANENT),
    ErrorSpec(60010, "The request needs App admin permission", _ADMIN, R.PERMANENT),
    ErrorSpec(
        60011,
        "SDKAppID rate over the limit",
        "The whole app is over its rate limit; the bot retries. Look for other heavy callers of this SDKAppID.",
        R.RATE_LIMITED,
    ),
    ErrorSpec(60012, "SDKAppID missing", "Set DESK_SDKAPPID to the app's SDKAppID.", R.PERMANENT),
    ErrorSpec(60013, "Tencent could not parse its own response", _TRANSIENT, R.TRANSIENT),
    ErrorSpec(60014, "Account exchange timeout", _TRANSIENT, R.TRANSIENT),
    ErrorSpec(60015, "Identifier has the wrong type", _MAINTAINERS, R.PERMANENT),
    ErrorSpec(
        60016,
        "SDKAppID disabled",
        "The app is disabled at Tencent. Open a Tencent Cloud support ticket.",
        R.PERMANENT,
    ),
    ErrorSpec(
        60017,
        "Request disabled",
        "Tencent has disabled this request. Open a Tencent Cloud support ticket.",
        R.PERMANENT,
    ),
    ErrorSpec(60018, "Too many requests", "Tencent is throttling; the bot retries in a few seconds.", R.RATE_LIMITED),
    ErrorSpec(60019, "Too many requests", "Tencent is throttling; the bot retries in a few seconds.", R.RATE_LIMITED),
    ErrorSpec(
        60020,
        "Package expired or not purchased",
        "Check the app's plan and billing in the console. A purchase takes effect after about 5 minutes.",
        R.PERMANENT,
    ),
    ErrorSpec(
        60021,
        "Caller IP not allowed",
        "Add the bot's outbound IP address to the app's IP allowlist in the console, or relax the rule.",
        R.PERMANENT,
    ),
    # --- common codes: 70xxx (UserSig and accounts) -----------------------------------------
    ErrorSpec(
        70001,
        "UserSig expired",
        "The bot re-signs automatically. If this persists, check the server clock (NTP) and, with "
        "DESK_USERSIG, generate a new sig valid for at least 24 hours.",
        R.RESIGN_ONCE,
    ),
    ErrorSpec(
        70002,
        "UserSig empty",
        "No signature was sent. Set DESK_SECRET_KEY (or DESK_USERSIG).",
        R.PERMANENT,
    ),
    ErrorSpec(
        70003,
        "UserSig could not be parsed (possibly truncated)",
        "If DESK_USERSIG is set, paste it again in full; otherwise this is a bug in the bot: "
        "tell its maintainers.",
        R.PERMANENT,
    ),
    ErrorSpec(
        70005,
        "UserSig check failed",
        "Check DESK_SECRET_KEY; if it is right, tell the bot's maintainers.",
        R.PERMANENT,
    ),
    ErrorSpec(
        70009,
        "UserSig signed with the wrong key",
        "DESK_SECRET_KEY belongs to a different app. Copy the key of this SDKAppID from the Chat console.",
        R.PERMANENT,
    ),
    ErrorSpec(
        70013,
        "The identifier in the URL differs from the one in the UserSig",
        "DESK_USERSIG was made for another account: generate it for DESK_IDENTIFIER, or set "
        "DESK_SECRET_KEY and let the bot sign.",
        R.PERMANENT,
    ),
    ErrorSpec(
        70014,
        "The SDKAppID in the URL differs from the one in the UserSig",
        "DESK_USERSIG was made for another app: generate it for DESK_SDKAPPID, or set "
        "DESK_SECRET_KEY and let the bot sign.",
        R.PERMANENT,
    ),
    ErrorSpec(
        70016,
        "No key found for this app (wrong region)",
        "Set DESK_REGION (or DESK_API_URL) to the data centre where the SDKAppID was created.",
        R.PERMANENT,
    ),
    ErrorSpec(
        70020,
        "SDKAppID does not exist",
        "Either DESK_SDKAPPID is mistyped or DESK_REGION is not the app's data centre: check both "
        "against the Chat console.",
        R.PERMANENT,
    ),
    ErrorSpec(
        70050,
        "Too many failed signature checks; locked for about a minute",
        "Fix DESK_SECRET_KEY / DESK_USERSIG first, then wait at least 60 seconds before trying again.",
        R.COOL_DOWN,
    ),
    ErrorSpec(
        70051,
        "Account blocklisted",
        "Remove the DESK_IDENTIFIER account from the blocklist in the Chat console.",
        R.PERMANENT,
    ),
    ErrorSpec(
        70052,
        "UserSig invalidated",
        "The bot re-signs automatically. If it repeats, check that DESK_SECRET_KEY was not rotated "
        "in the console.",
        R.RESIGN_ONCE,
    ),
    ErrorSpec(
        70107,
        "Account does not exist",
        "Create or import the DESK_IDENTIFIER account in the app, or set DESK_IDENTIFIER to an existing admin.",
        R.PERMANENT,
    ),
    ErrorSpec(
        70114, "Restricted for security reasons", "Open a Tencent Cloud support ticket.", R.PERMANENT
    ),
    ErrorSpec(70169, "Server internal timeout", _TRANSIENT, R.TRANSIENT),
    ErrorSpec(70402, "Invalid parameter", _MAINTAINERS, R.PERMANENT),
    ErrorSpec(70403, "The request needs App admin permission", _ADMIN, R.PERMANENT),
    ErrorSpec(70500, "Server internal error", _TRANSIENT, R.TRANSIENT),
    # --- Desk codes: 141xxx --------------------------------------------------------------------
    ErrorSpec(
        141000,
        "The app is not a Desk app",
        "DESK_SDKAPPID is a plain Chat app. Set it to the SDKAppID of the Desk app.",
        R.PERMANENT,
    ),
    ErrorSpec(141002, "Desk internal error", _TRANSIENT, R.TRANSIENT),
    ErrorSpec(141004, "Invalid parameter", _MAINTAINERS, R.PERMANENT),
)

_TRANSPORT: tuple[ErrorSpec, ...] = (
    ErrorSpec(
        T.CONNECTION_FAILED,
        "Could not connect to Desk (DNS failure or connection refused)",
        "Check DESK_REGION / DESK_API_URL and the host's outbound network. If DNS is the problem, "
        "point DESK_API_URL at the region's backup *.my-imcloud.com domain.",
        R.TRANSIENT,
    ),
    ErrorSpec(
        T.CONNECTION_LOST,
        "The connection to Desk broke after the request was sent",
        "A network problem between the bot and Tencent; try again shortly. A change (adding or "
        "deleting a language) is never repeated blindly: the bot reads the list again to see whether "
        "it took effect.",
        R.TRANSIENT,
    ),
    ErrorSpec(
        T.CONNECT_TIMEOUT,
        "Connecting to Desk timed out",
        "Try again later. If it persists, check outbound access from the host to Tencent.",
        R.TRANSIENT,
    ),
    ErrorSpec(
        T.READ_TIMEOUT,
        "Desk did not answer in time",
        "Tencent is slow right now; try again in a minute. If it persists, raise DESK_TIMEOUT "
        "(seconds per attempt; keep it well under Slack's 3 s for interactive replies).",
        R.TRANSIENT,
    ),
    ErrorSpec(
        T.TLS_ERROR,
        "TLS or certificate error talking to Desk",
        "Check DESK_API_URL / DESK_REGION and any intercepting proxy between the bot and Tencent.",
        R.PERMANENT,
    ),
    ErrorSpec(
        T.HTTP_GATEWAY,
        "Desk answered with an HTTP gateway error (502/503/504)",
        "Temporary network problem between the bot and Tencent; try again shortly.",
        R.TRANSIENT,
    ),
    ErrorSpec(
        T.HTTP_STATUS,
        "Desk answered with an unexpected HTTP status",
        "Check DESK_API_URL / DESK_REGION: the host or a proxy in between is not Tencent's REST API.",
        R.PERMANENT,
    ),
    ErrorSpec(
        T.BAD_RESPONSE,
        "Desk's answer was not the documented JSON envelope",
        "Possibly a truncated answer or a proxy's error page; the bot retries once. If it repeats, "
        "check DESK_API_URL / DESK_REGION.",
        R.TRANSIENT_ONCE,
    ),
    ErrorSpec(
        T.LOCAL_RATE_LIMIT,
        "The bot's own rate limit for Desk is busy",
        "Too many requests at once: the bot keeps Desk calls under DESK_RATE_LIMIT per second. "
        "Try again in a few seconds.",
        R.PERMANENT,
    ),
    ErrorSpec(
        T.COOL_DOWN,
        "Desk calls are paused after Tencent locked the account (70050)",
        "Fix DESK_SECRET_KEY / DESK_USERSIG; the bot tries again after the 60-second lock.",
        R.PERMANENT,
    ),
)

CATALOGUE: dict[int | TransportCode, ErrorSpec] = {spec.code: spec for spec in _DESK_CODES + _TRANSPORT}


def _unknown(code: int) -> ErrorSpec:
    return ErrorSpec(
        code,
        "Unknown Desk error",
        "This code is not in the bot's catalogue. Look it up in Tencent's error code list with the "
        "message shown, and check the Desk configuration for this SDKAppID.",
        R.PERMANENT,
    )


def desk_error(code: int, error_info: str = "", request_id: str | None = None) -> DeskError:
    """The `DeskError` for a non-zero `ErrorCode` from Desk's envelope."""
    spec = CATALOGUE.get(code) or _unknown(code)
    return DeskError(spec, error_info=error_info, request_id=request_id)


def transport_error(kind: TransportCode, detail: str = "") -> DeskError:
    """The `DeskError` for a failure outside Desk's envelope. `detail` must hold no URL."""
    return DeskError(CATALOGUE[kind], detail=detail)


def error_to_dict(error: DeskError) -> dict[str, Any]:
    """What of a `DeskError` is worth storing (shared caches): JSON-ready, without the URL."""
    return {
        "code": error.code,
        "error_info": error.error_info,
        "request_id": error.request_id,
        "detail": error.detail,
    }


def error_from_dict(data: Any) -> DeskError | None:
    """The `DeskError` `error_to_dict` stored, or None when it cannot be read (another bot version)."""
    if not isinstance(data, dict):
        return None
    code = data.get("code")
    if isinstance(code, int) and not isinstance(code, bool):
        spec = desk_error(code).spec
    elif isinstance(code, str) and code in CATALOGUE:
        spec = CATALOGUE[TransportCode(code)]
    else:
        return None
    request_id = data.get("request_id")
    return DeskError(
        spec,
        error_info=str(data.get("error_info") or ""),
        request_id=request_id if isinstance(request_id, str) else None,
        detail=str(data.get("detail") or ""),
    )


def catalogue_markdown() -> str:
    """The catalogue as a Markdown table (the README's error table is this output)."""
    rows = ["| code | meaning | what to do | retry |", "|---|---|---|---|"]
    for spec in CATALOGUE.values():
        code = f"`{spec.code}`"
        rows.append(f"| {code} | {spec.meaning} | {spec.hint.replace('|', '/')} | {spec.retry.value} |")
    return "\n".join(rows) + "\n"
