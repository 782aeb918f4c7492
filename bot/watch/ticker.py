"""The in-process watch ticker: a daemon thread that runs `WatchService.tick()` at each interval.

It runs inside `serve` and `socket` beside the digest ticker (DIGEST_TICKER=0 turns both off).
Several tickers in several processes are safe: each app's poll slot is claimed in the database,
so one process polls an app per interval, and every alert is claimed before it is posted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from bot.watch.service import WatchService

log = logging.getLogger(__name__)


class WatchTicker:
    def __init__(self, service: WatchService, *, offset: float = 1.0, timer: Callable[[], float] = time.time) -> None:
        self.service = service
        self.offset = offset  # seconds after the slot boundary
        self.timer = timer
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0
        self._failing = False

    def start(self) -> WatchTicker:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="watch-ticker", daemon=True)
            self._thread.start()
            log.info("watch ticker started (every %gs)", self.service.interval)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.service.tick()
            except SQLAlchemyError as error:  # the database is down: one line per outage, no driver text
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
            self.ticks += 1
            interval = self.service.interval
            self._stop.wait(interval - (self.timer() % interval) + self.offset)
