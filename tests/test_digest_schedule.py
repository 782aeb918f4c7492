"""Digest schedule grammar, due times across DST transitions, and period ids."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from bot.digests.schedule import Schedule, ScheduleError, parse_schedule


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- grammar ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("daily 09:00", Schedule("daily", time(9, 0), "UTC")),
        ("Daily 9:05", Schedule("daily", time(9, 5), "UTC")),
        ("weekdays 17:30 Europe/Berlin", Schedule("weekdays", time(17, 30), "Europe/Berlin")),
        ("weekly mon 09:00", Schedule("weekly", time(9, 0), "UTC", weekday=0)),
        ("WEEKLY Sunday 23:59 america/new_york", Schedule("weekly", time(23, 59), "America/New_York", 6)),
        ("  weekly   fri   00:00   Asia/Tokyo ", Schedule("weekly", time(0, 0), "Asia/Tokyo", 4)),
    ],
)
def test_valid_schedules_parse(text: str, expected: Schedule) -> None:
    assert parse_schedule(text, "UTC") == expected


def test_default_zone_applies_when_none_is_given() -> None:
    assert parse_schedule("daily 09:00", "Europe/Paris").zone == "Europe/Paris"
    assert parse_schedule("daily 09:00 UTC", "Europe/Paris").zone == "UTC"


@pytest.mark.parametrize(
    "text",
    ["daily 09:00 UTC", "weekdays 07:15 Europe/Berlin", "weekly sat 12:00 Australia/Lord_Howe"],
)
def test_canonical_text_round_trips(text: str) -> None:
    schedule = parse_schedule(text, "UTC")
    assert schedule.text() == text
    assert parse_schedule(schedule.text(), "Asia/Tokyo") == schedule


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "empty"),
        ("hourly 09:00", "`hourly` is not a schedule"),
        ("daily", "needs a time"),
        ("weekly 09:00", "`09:00` is not a day"),
        ("weekly mon", "needs a time"),
        ("weekly", "needs a day"),
        ("daily 24:00", "`24:00` is not a time"),
        ("daily 9", "`9` is not a time"),
        ("daily 09:60", "is not a time"),
        ("daily 9am", "is not a time"),
        ("daily 09:00 Mars/Olympus", "`Mars/Olympus` is not a time zone"),
        ("daily 09:00 ../../etc/passwd", "is not a time zone"),
        ("daily 09:00 Europe/Berlin please", "Unexpected `please`"),
        ("weekly funday 09:00", "`funday` is not a day"),
    ],
)
def test_bad_input_is_rejected_with_a_reason(text: str, complaint: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(text, "UTC")
    assert complaint in str(caught.value)


# --- due times -------------------------------------------------------------------------------


def test_daily_in_utc() -> None:
    schedule = parse_schedule("daily 09:00", "UTC")
    assert schedule.last_at_or_before(utc(2026, 3, 30, 9, 0)) == utc(2026, 3, 30, 9, 0)
    assert schedule.last_at_or_before(utc(2026, 3, 30, 8, 59)) == utc(2026, 3, 29, 9, 0)
    assert schedule.next_after(utc(2026, 3, 30, 9, 0)) == utc(2026, 3, 31, 9, 0)


def test_weekdays_skip_the_weekend() -> None:
    schedule = parse_schedule("weekdays 09:00 UTC", "UTC")
    saturday = utc(2026, 4, 4, 12, 0)
    assert schedule.last_at_or_before(saturday) == utc(2026, 4, 3, 9, 0)  # Friday
    assert schedule.next_after(saturday) == utc(2026, 4, 6, 9, 0)  # Monday


def test_weekly_runs_once_a_week_on_its_day() -> None:
    schedule = parse_schedule("weekly wed 18:00 UTC", "UTC")
    start = utc(2026, 4, 1, 0, 0)
    fired = {schedule.last_at_or_before(start + timedelta(hours=h)) for h in range(0, 24 * 21)}
    fired.discard(schedule.last_at_or_before(start))
    assert sorted(f.date() for f in fired if f is not None) == [date(2026, 4, 1), date(2026, 4, 8), date(2026, 4, 15)]


def test_wall_clock_time_is_kept_across_dst_in_berlin() -> None:
    schedule = parse_schedule("daily 09:00 Europe/Berlin", "UTC")
    assert schedule.occurrence_on(date(2026, 3, 28)) == utc(2026, 3, 28, 8, 0)  # CET, UTC+1
    assert schedule.occurrence_on(date(2026, 3, 29)) == utc(2026, 3, 29, 7, 0)  # CEST, UTC+2
    assert schedule.occurrence_on(date(2026, 10, 24)) == utc(2026, 10, 24, 7, 0)
    assert schedule.occurrence_on(date(2026, 10, 25)) == utc(2026, 10, 25, 8, 0)


def test_wall_clock_time_is_kept_across_dst_in_new_york() -> None:
    schedule = parse_schedule("weekdays 08:30 America/New_York", "UTC")
    assert schedule.occurrence_on(date(2026, 3, 6)) == utc(2026, 3, 6, 13, 30)  # EST
    assert schedule.occurrence_on(date(2026, 3, 9)) == utc(2026, 3, 9, 12, 30)  # EDT
    assert schedule.next_after(utc(2026, 3, 6, 14, 0)) == utc(2026, 3, 9, 12, 30)


def test_a_time_in_the_spring_forward_gap_runs_once_after_the_jump() -> None:
    # Europe/Berlin 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
    schedule = parse_schedule("daily 02:30 Europe/Berlin", "UTC")
    fired = schedule.occurrence_on(date(2026, 3, 29))
    assert fired == utc(2026, 3, 29, 1, 30)  # 03:30 CEST
    fires = _fires_between(schedule, utc(2026, 3, 28, 12, 0), utc(2026, 3, 30, 12, 0))
    assert fires == [utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)]
    assert schedule.period_of(fired) == "2026-03-29"


def test_a_time_repeated_by_fall_back_runs_once_at_its_first_occurrence() -> None:
    # Europe/Berlin 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
    schedule = parse_schedule("daily 02:30 Europe/Berlin", "UTC")
    fires = _fires_between(schedule, utc(2026, 10, 24, 12, 0), utc(2026, 10, 26, 12, 0))
    assert fires == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    # An hour later (02:30 CET, the second 02:30) it is not due again: same period.
    second = utc(2026, 10, 25, 1, 30)
    assert schedule.last_at_or_before(second) == utc(2026, 10, 25, 0, 30)


def test_midnight_schedules_near_dst_keep_their_date() -> None:
    # America/Santiago changes at midnight; 00:30 on the change day is in the gap there.
    schedule = parse_schedule("daily 00:30 America/Santiago", "UTC")
    fires = _fires_between(schedule, utc(2026, 9, 4, 12, 0), utc(2026, 9, 8, 12, 0))
    periods = [schedule.period_of(f) for f in fires]
    assert periods == ["2026-09-05", "2026-09-06", "2026-09-07", "2026-09-08"]


def _fires_between(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """Every distinct scheduled instant seen by a ticker every 5 minutes between start and end."""
    seen: list[datetime] = []
    now = start
    while now <= end:
        last = schedule.last_at_or_before(now)
        if last is not None and last > start and last not in seen:
            seen.append(last)
        now += timedelta(minutes=5)
    return seen


# --- periods ---------------------------------------------------------------------------------


def test_period_ids_come_from_the_local_scheduled_date() -> None:
    tokyo = parse_schedule("daily 08:00 Asia/Tokyo", "UTC")
    fired = tokyo.last_at_or_before(utc(2026, 4, 1, 0, 0))  # 09:00 in Tokyo on 1 April
    assert fired == utc(2026, 3, 31, 23, 0)
    assert tokyo.period_of(fired) == "2026-04-01"  # local date, not the UTC one


def test_weekly_periods_are_iso_weeks() -> None:
    schedule = parse_schedule("weekly sun 20:00 UTC", "UTC")
    fired = schedule.last_at_or_before(utc(2027, 1, 4, 0, 0))
    assert fired == utc(2027, 1, 3, 20, 0)
    assert schedule.period_of(fired) == "2026-W53"


def test_describe_is_human() -> None:
    assert parse_schedule("weekly tue 10:00 UTC", "UTC").describe() == "every Tuesday at 10:00 (UTC)"
    assert parse_schedule("weekdays 10:00 UTC", "UTC").describe().startswith("every weekday")
