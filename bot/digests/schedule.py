"""Digest schedules: the grammar users type, and when each schedule is due.

Grammar (case-insensitive, the zone is optional and defaults to DIGEST_DEFAULT_TZ):

    daily HH:MM [Area/City]
    weekdays HH:MM [Area/City]          Monday to Friday
    weekly DAY HH:MM [Area/City]        DAY = mon … sun (or the full name)

A schedule is a wall-clock time in an IANA zone, so 09:00 Europe/Berlin stays
09:00 local across daylight-saving changes. Two edge cases follow the usual
cron-like convention, made explicit here:
- a time that does not exist on a spring-forward day (02:30 in a skipped hour)
  runs when the clocks have moved on, at the same offset into the gap (03:30);
- a time that occurs twice on a fall-back day runs once, at its first occurrence.

Each scheduled occurrence belongs to a *period*, named from the scheduled local
date (never from "now"): `2026-03-30` for daily and weekday schedules,
`2026-W14` (ISO week) for weekly ones. A period is what is posted exactly once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
KINDS = ("daily", "weekdays", "weekly")

EXAMPLES = (
    "digest daily 09:00",
    "digest weekdays 09:00 Europe/Berlin",
    "digest weekly mon 09:30 America/New_York",
)


class ScheduleError(ValueError):
    """The text is not a schedule. The message says what is wrong, for the person who typed it."""


@lru_cache(maxsize=1)
def _zones_by_folded_name() -> dict[str, str]:
    return {name.casefold(): name for name in available_timezones()}


def resolve_zone(name: str) -> str:
    """The canonical IANA name for `name` (case-insensitive), or ScheduleError."""
    canonical = _zones_by_folded_name().get(name.casefold())
    if canonical is None:
        # available_timezones() can miss names ZoneInfo still loads (e.g. "UTC" on some builds).
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ScheduleError(
                f"`{name}` is not a time zone I know. Use an IANA name such as "
                "`Europe/Berlin`, `America/New_York` or `UTC`."
            ) from None
        canonical = name
    return canonical


@dataclass(frozen=True)
class Schedule:
    kind: str  # one of KINDS
    at: time  # local wall-clock time, minutes precision
    zone: str  # canonical IANA name
    weekday: int | None = None  # 0 = Monday, only for weekly

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    def text(self) -> str:
        """The canonical grammar form, as stored and as `parse_schedule` reads it back."""
        day = f" {DAYS[self.weekday]}" if self.kind == "weekly" and self.weekday is not None else ""
        return f"{self.kind}{day} {self.at:%H:%M} {self.zone}"

    def describe(self) -> str:
        """Human wording: "every weekday at 09:00 (Europe/Berlin)"."""
        if self.kind == "daily":
            when = "every day"
        elif self.kind == "weekdays":
            when = "every weekday (Mon–Fri)"
        else:
            assert self.weekday is not None
            when = f"every {_FULL_DAYS[self.weekday].capitalize()}"
        return f"{when} at {self.at:%H:%M} ({self.zone})"

    def runs_on(self, day: date) -> bool:
        if self.kind == "daily":
            return True
        if self.kind == "weekdays":
            return day.weekday() < 5
        return day.weekday() == self.weekday

    def occurrence_on(self, day: date) -> datetime:
        """The UTC instant this schedule fires on local date `day` (DST rules in the docstring)."""
        local = datetime.combine(day, self.at, tzinfo=self.tz)  # fold=0: first of a repeated time
        instant = local.astimezone(UTC)
        # A nonexistent local time converts with the pre-transition offset, which lands
        # after the jump (02:30 CET in a 02:00→03:00 gap is 03:30 CEST): what we want.
        return instant

    def last_at_or_before(self, now: datetime) -> datetime | None:
        """The most recent scheduled instant <= now (UTC), or None in the (impossible) case of none."""
        today = now.astimezone(self.tz).date()
        for back in range(-1, 9):  # -1: a gap-shifted occurrence can sit "tomorrow" locally
            day = today - timedelta(days=back)
            if self.runs_on(day):
                instant = self.occurrence_on(day)
                if instant <= now:
                    return instant
        return None

    def next_after(self, now: datetime) -> datetime:
        """The first scheduled instant strictly after now (UTC)."""
        today = now.astimezone(self.tz).date()
        for ahead in range(-1, 9):
            day = today + timedelta(days=ahead)
            if self.runs_on(day):
                instant = self.occurrence_on(day)
                if instant > now:
                    return instant
        raise AssertionError("a weekly schedule always fires within 8 days")  # pragma: no cover

    def period_of(self, instant: datetime) -> str:
        """The period id of a scheduled instant: its local date, or ISO week for weekly schedules."""
        local_day = instant.astimezone(self.tz).date()
        if self.kind == "weekly":
            year, week, _ = local_day.isocalendar()
            return f"{year}-W{week:02d}"
        return local_day.isoformat()


_TIME = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def parse_time(word: str) -> time:
    match = _TIME.fullmatch(word)
    if match is None:
        raise ScheduleError(f"`{word}` is not a time. Use 24-hour HH:MM, for example `09:00` or `17:30`.")
    return time(int(match.group(1)), int(match.group(2)))


def parse_day(word: str) -> int:
    folded = word.casefold()
    for index, (short, full) in enumerate(zip(DAYS, _FULL_DAYS, strict=True)):
        if folded in (short, full):
            return index
    raise ScheduleError(f"`{word}` is not a day of the week. Use mon, tue, wed, thu, fri, sat or sun.")


def parse_schedule(text: str, default_zone: str) -> Schedule:
    """Parse the grammar in the module docstring; raise ScheduleError with a readable reason."""
    words = text.split()
    if not words:
        raise ScheduleError("The schedule is empty.")
    kind = words[0].casefold()
    if kind not in KINDS:
        raise ScheduleError(f"`{words[0]}` is not a schedule. Start with daily, weekdays or weekly.")
    rest = words[1:]
    weekday = None
    if kind == "weekly":
        if not rest:
            raise ScheduleError("A weekly schedule needs a day and a time, for example `weekly mon 09:00`.")
        weekday = parse_day(rest[0])
        rest = rest[1:]
    if not rest:
        example = f"{kind} mon 09:00" if kind == "weekly" else f"{kind} 09:00"
        raise ScheduleError(f"A {kind} schedule needs a time, for example `{example}`.")
    at = parse_time(rest[0])
    rest = rest[1:]
    if len(rest) > 1:
        raise ScheduleError(f"Unexpected `{' '.join(rest[1:])}` after the time zone.")
    zone = resolve_zone(rest[0]) if rest else resolve_zone(default_zone)
    return Schedule(kind=kind, at=at, zone=zone, weekday=weekday)
