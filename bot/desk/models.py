"""Typed, immutable results of `robot_get_language_list`, and the tolerant parser that builds them.

The parser accepts what Desk documents and the quirks docs/desk-api.md §3.3 records (an
empty tag on the default language, a missing `Languages` field, zero or several
defaults, unknown extra fields) and turns anything else into a `DeskError`
(`bad-response`): whatever JSON arrives, the result is a `LanguageList` or a
`DeskError`, never another exception.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from bot.desk.errors import DeskError, TransportCode, desk_error, transport_error
from bot.desk.language_names import NAMES

DEFAULT_TAG_NAME = "Default language (no tag)"


@lru_cache(maxsize=1024)
def language_name(tag: str) -> str:
    """A human name for a language tag: `zh-TW` -> "Chinese (Taiwan)", `fil` -> "Filipino".

    Tags are shown as Desk returns them and never normalised; an empty tag (how the
    docs show the default language) and unknown tags still get a sensible label.
    """
    if not tag:
        return DEFAULT_TAG_NAME
    known = NAMES.get(tag)
    if known is not None:  # without loading langcodes' name tables (bot/desk/language_names.py)
        return known
    import langcodes  # only for a tag outside NAMES: its import costs ~100 ms and 3 MB, its tables 17 MB

    try:
        if langcodes.tag_is_valid(tag):
            name = str(langcodes.Language.get(tag).display_name())
            if not name.startswith("Unknown language"):
                return name
    except (ValueError, LookupError):  # LanguageTagError is a ValueError
        pass
    return f"Unrecognised tag ({tag})"


@dataclass(frozen=True)
class Language:
    tag: str
    is_default: bool
    name: str

    @classmethod
    def of(cls, tag: str, is_default: bool = False) -> Language:
        return cls(tag=tag, is_default=is_default, name=language_name(tag))


@dataclass(frozen=True)
class LanguageList:
    """A chatbot's languages as fetched at `fetched_at` (Unix seconds).

    `stale` is True when Desk failed and this is the last list known to be good;
    `error` then says why the fresh fetch failed. `from_cache` is True when the
    list was not fetched for this very request.
    """

    languages: tuple[Language, ...]
    default: Language | None
    fetched_at: float
    stale: bool = False
    error: DeskError | None = field(default=None, compare=False)
    from_cache: bool = False
    request_id: str | None = None

    @classmethod
    def build(cls, languages: list[Language], fetched_at: float, request_id: str | None = None) -> LanguageList:
        default = next((lang for lang in languages if lang.is_default), None)
        return cls(tuple(languages), default, fetched_at, request_id=request_id)

    @property
    def fingerprint(self) -> tuple[tuple[str, bool], ...]:
        """What the list says, without when it was fetched: equal lists compare equal."""
        return tuple((lang.tag, lang.is_default) for lang in self.languages)

    def as_stale(self, error: DeskError) -> LanguageList:
        return replace(self, stale=True, error=error, from_cache=True)

    def as_cached(self) -> LanguageList:
        """This list, marked as not fetched for the request at hand."""
        return replace(self, from_cache=True)

    def has(self, tag: str) -> bool:
        """Whether a language with exactly this tag is in the list (tags are never normalised)."""
        return any(lang.tag == tag for lang in self.languages)

    def to_json(self) -> str:
        """Serialise what is worth sharing or storing (Redis cache, digest snapshots)."""
        return json.dumps(
            {
                "languages": [[lang.tag, lang.is_default] for lang in self.languages],
                "fetched_at": self.fetched_at,
                "request_id": self.request_id,
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> LanguageList:
        data = json.loads(text)
        languages = [Language.of(str(tag), bool(is_default)) for tag, is_default in data["languages"]]
        return cls.build(languages, float(data["fetched_at"]), data.get("request_id"))


def bad_response(detail: str) -> DeskError:
    """The `bad-response` error for an answer that is not what docs/desk-api.md documents."""
    return transport_error(TransportCode.BAD_RESPONSE, detail)


def as_int(value: Any) -> int | None:
    """An integer sent as a number or a numeric string (docs/desk-api.md §3.3), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def read_envelope(payload: Any) -> tuple[dict[str, Any], str | None]:
    """Check Tencent's envelope (docs/desk-api.md §3.1, §3.3) of a decoded answer, for any API.

    Returns the answer's object and its `RequestId`; raises the `DeskError` of a non-zero
    `ErrorCode`, or `bad-response` when the envelope itself is malformed.
    """
    if not isinstance(payload, dict):
        raise bad_response("the answer is not a JSON object")
    request_id = payload.get("RequestId")
    request_id = str(request_id) if isinstance(request_id, str | int) and request_id != "" else None
    code = as_int(payload.get("ErrorCode"))
    if code is None:
        raise bad_response("ErrorCode is missing or not a number")
    info = payload.get("ErrorInfo")
    info = info if isinstance(info, str) else ("" if info is None else json.dumps(info)[:200])
    if code != 0:
        raise desk_error(code, info, request_id)
    if payload.get("ActionStatus") != "OK":
        raise bad_response("ErrorCode is 0 but ActionStatus is not OK")
    return payload, request_id


def list_field(body: dict[str, Any], name: str) -> list[Any]:
    """A field that must be a JSON array; missing or null is an empty one (docs/desk-api.md §9.3)."""
    items = body.get(name)
    if items is None:
        return []
    if not isinstance(items, list):
        raise bad_response(f"{name} is not a list")
    return items


def parse_envelope(payload: Any, *, fetched_at: float) -> LanguageList:
    """Turn a decoded JSON answer into a `LanguageList`, or raise `DeskError`."""
    payload, request_id = read_envelope(payload)
    languages = []
    for item in list_field(payload, "Languages"):
        if not isinstance(item, dict):
            raise bad_response("a Languages item is not an object")
        tag = item.get("LanguageTag")
        if tag is None:
            tag = ""
        if not isinstance(tag, str):
            raise bad_response("a LanguageTag is not a string")
        flag = item.get("IsDefault", 0)
        flag = 0 if flag is None else flag
        number = 1 if flag is True else 0 if flag is False else as_int(flag)
        if number is None:
            raise bad_response("an IsDefault is not a number")
        languages.append(Language.of(tag, number == 1))
    return LanguageList.build(languages, fetched_at, request_id)


def decode_json(body: bytes) -> Any:
    """Decode a raw HTTP body; a truncated or non-JSON body is `bad-response`."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise bad_response("the answer is not valid JSON (truncated, or a proxy's page?)") from None


def parse_body(body: bytes, *, fetched_at: float) -> LanguageList:
    """Decode and parse a raw HTTP body (a truncated or non-JSON body is `bad-response`)."""
    return parse_envelope(decode_json(body), fetched_at=fetched_at)
