"""Adding and deleting a language: which failures may be retried, and what a write's outcome says.

Neither `robot_add_language` nor `robot_del_language` is idempotent (docs/desk-api.md §8),
so a failure is one of two kinds:

- **certainly not run**: Desk's envelope refused the call (any code but a "transient"
  one, which says Desk itself timed out or failed midway), or nothing was sent at all
  (no connection, connect timeout, our own limiter or cool-down). Of these, only the
  ones where trying again can help are retried: no connection / connect timeout, the
  rate-limit codes (-14, 60007, 60011, 60018, 60019), and an expired or invalidated
  UserSig (70001, 70052: refused at authentication, before anything ran; re-signed once);
- **ambiguous**: the request was sent and its answer lost or garbled (read timeout, a
  connection reset after sending, 502/503/504 or another HTTP status, a truncated or
  non-JSON answer, a TLS failure, a transient Desk code). Never retried: the client reads
  the list again and reports what it shows.

All of this is pure: `DeskClient.add_language()` / `remove_language()` do the I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from bot.desk.errors import DeskError, RetryClass, TransportCode
from bot.desk.models import LanguageList, language_name

_NEVER_SENT = frozenset(
    {
        TransportCode.CONNECTION_FAILED,
        TransportCode.CONNECT_TIMEOUT,
        TransportCode.LOCAL_RATE_LIMIT,
        TransportCode.COOL_DOWN,
    }
)


def write_may_have_run(error: DeskError) -> bool:
    """Whether a write that failed with `error` may still have taken effect."""
    if error.is_transport:
        return error.code not in _NEVER_SENT
    return error.retry is RetryClass.TRANSIENT


def write_may_repeat(error: DeskError) -> bool:
    """Whether a write that failed with `error` may be sent again: it certainly did not run."""
    if error.is_transport:
        return error.code in (TransportCode.CONNECTION_FAILED, TransportCode.CONNECT_TIMEOUT)
    return error.retry in (RetryClass.RATE_LIMITED, RetryClass.RESIGN_ONCE)


class WriteAction(StrEnum):
    ADD = "add"
    REMOVE = "remove"


class WriteStatus(StrEnum):
    APPLIED = "applied"  # the tag is now present (add) or absent (remove), as intended
    NOT_APPLIED = "not-applied"  # Desk refused the write: certainly nothing changed
    # The answer was lost and the list read again does not show the change (yet): Desk may still
    # apply a write whose answer timed out, so this is not "not applied" (docs/desk-api.md §8).
    NOT_SEEN = "not-seen"
    UNKNOWN = "unknown"  # the answer was lost and the list could not be read again either


def _label(tag: str) -> str:
    return f"{language_name(tag)} ({tag})" if tag else language_name(tag)


@dataclass(frozen=True)
class WriteOutcome:
    """What adding or deleting the language `tag` did.

    `error` is why it was not applied, or, when `ambiguous`, the failure that lost Desk's
    answer (the status then comes from reading the list again). `languages` is the list as
    read after the write (fetched fresh), None when it was not read (Desk refused the write)
    or could not be read (`reread_error` says why).
    """

    action: WriteAction
    tag: str
    status: WriteStatus
    error: DeskError | None = field(default=None, compare=False)
    ambiguous: bool = False
    languages: LanguageList | None = None
    reread_error: DeskError | None = field(default=None, compare=False)

    @property
    def applied(self) -> bool:
        return self.status is WriteStatus.APPLIED

    def describe(self) -> str:
        """One sentence for the person who asked (no hint: `error.hint` has it)."""
        done = "added" if self.action is WriteAction.ADD else "deleted"
        what = _label(self.tag)
        if not self.ambiguous:
            if self.applied:
                return f"{what} was {done}."
            reason = f": {self.error.meaning}" if self.error is not None else ""
            return f"{what} was not {done}{reason}."
        lost = f"Desk's answer was lost ({self.error.code if self.error else 'unknown'})"
        if self.status is WriteStatus.APPLIED:
            return f"{lost}, but the list read again shows {what} was {done}."
        if self.status is WriteStatus.NOT_SEEN:
            return (
                f"{lost}, and the list read again does not show that {what} was {done}. Desk may still apply "
                "it: look at the list again in a minute before trying again."
            )
        return (
            f"{lost}, and the list could not be read again: whether {what} was {done} is unknown. "
            "Look at the list before trying again."
        )


def outcome_after_lost_answer(
    action: WriteAction,
    tag: str,
    error: DeskError,
    languages: LanguageList | None,
    reread_error: DeskError | None = None,
) -> WriteOutcome:
    """What a write whose answer was lost (`error`) did, as the list read again shows it."""
    if languages is None:
        return WriteOutcome(action, tag, WriteStatus.UNKNOWN, error, True, reread_error=reread_error)
    present = languages.has(tag)
    applied = present if action is WriteAction.ADD else not present
    status = WriteStatus.APPLIED if applied else WriteStatus.NOT_SEEN
    return WriteOutcome(action, tag, status, error, True, languages)
