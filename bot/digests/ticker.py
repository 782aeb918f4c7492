"""The in-process digest ticker: a daemon thread that runs `DigestService.tick()` once a minute.

It runs inside `serve` and `socket` (one per process; DIGEST_TICKER=0 turns it off).
Several tickers in several processes are safe: every post is claimed in the
database first. The first tick runs at start (after seeding DIGEST_CHANNEL), which
is the catch-up after a restart or deploy; later ticks run just after each minute boundary, so a 09:00
digest goes out at 09:00 and a few seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bot.database import DB_DOWN_ERRORS
from bot.digests.service import DigestService
from bot.ticking import Ticker

log = logging.getLogger(__name__)


class DigestTicker(Ticker):
    name = "digest"

    def __init__(
        self,
        service: DigestService,
        *,
        interval: float = 60.0,
        offset: float = 2.0,
        timer: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.service = service
        self.interval = interval
        self.offset = offset  # seconds after the boundary: lets clocks a little behind catch up
        self.timer = timer
        self._seeded = False

    def describe(self) -> str:
        return f" (every {self.interval:g}s)"

    def tick_once(self) -> None:
        try:
            if not self._seeded:  # DIGEST_CHANNEL, once the database answers
                self.service.seed_from_settings()
                self._seeded = True
            self.service.tick()
        except DB_DOWN_ERRORS as error:  # the database is down: one line per outage, retried
            self.service.tick_failed(error)
        except Exception as error:  # a bug: keep its traceback, and keep the thread alive
            log.exception("digest tick failed; trying again next minute")
            self.service.tick_failed(error)
        else:
            self.service.tick_succeeded()

    def delay(self) -> float:
        now = self.timer()
        return self.interval - (now % self.interval) + self.offset if self.interval >= 60 else self.interval
