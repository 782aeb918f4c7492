"""Scheduled channel digests: subscriptions from Slack, posted exactly once per period.

schedule.py (grammar, DST, period ids) · changes.py (what changed since the last
digest) · store.py (SQL storage and the claim) · service.py (commands, ticks,
posting) · messages.py (their Block Kit) · ticker.py (the in-process minute ticker).
`python -m bot digest --due` (bot/cli.py) runs one tick for external schedulers.
"""

from bot.desk.changes import Changes, diff
from bot.digests.schedule import Schedule, ScheduleError, parse_schedule

__all__ = ["Changes", "Schedule", "ScheduleError", "diff", "parse_schedule"]
