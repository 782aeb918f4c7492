"""The in-process watch ticker: a daemon thread that runs `WatchService.tick()` at each interval.

It runs inside `serve` and `socket` beside the digest ticker (DIGEST_TICKER=0 turns both off).
Several tickers in several processes are safe: each app's poll slot is claimed in the database,
so one process polls an app per interval, and every alert is claimed before it is posted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bot.database import DB_DOWN_ERRORS
from bot.ticking import Ticker
from bot.watch.service import WatchService

log = logging.getLogger(__name__)


class WatchTicker(Ticker):
    name = "watch"

    def __init__(self, service: WatchService, *, offset: float = 1.0, timer: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.service = service
        self.offset = offset  # seconds after the slot boundary
        self.timer = timer
        self._failing = False

    def describe(self) -> str:
        return f" (every {self.service.interval:g}s)"

    def tick_once(self) -> None:
        try:
            self.service.tick()
        except DB_DOWN_ERRORS as error:  # the database is down: one line per outage, no driver text
            if not self._failing:
                log.warning("watch tick failed (%s); trying again next interval. Check DATABASE_URL.",
                            type(error).__name__)
            self._failing = True
        except Exception:  # a bug: keep its traceback, and keep the thread alive
            log.exception("watch tick failed; trying again next interval")
            self._failing = True
        else:
            if self._failing:
                log.info("watch ticks work again")
            self._failing = False

    def delay(self) -> float:
        interval = self.service.interval
        return interval - (self.timer() % interval) + self.offset
