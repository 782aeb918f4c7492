"""The in-process digest ticker: a daemon thread that runs `DigestService.tick()` once a minute.

It runs inside `serve` and `socket` (one per process; DIGEST_TICKER=0 turns it off).
Several tickers in several processes are safe: every post is claimed in the
database first. The first tick runs at start (after seeding DIGEST_CHANNEL), which
is the catch-up after a restart or deploy; later ticks run just after each minute boundary, so a 09:00
digest goes out at 09:00 and a few seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from bot.digests.service import DigestService
from bot.digests.store import DB_DOWN_ERRORS

log = logging.getLogger(__name__)


class DigestTicker:
    def __init__(
        self,
        service: DigestService,
        *,
        interval: float = 60.0,
        offset: float = 2.0,
        timer: Callable[[], float] = time.time,
    ) -> None:
        self.service = service
        self.interval = interval
        self.offset = offset  # seconds after the boundary: lets clocks a little behind catch up
        self.timer = timer
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0

    def start(self) -> DigestTicker:
        if self._thread is not None:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="digest-ticker", daemon=True)
        self._thread.start()
        log.info("digest ticker started (every %gs)", self.interval)
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
        seeded = False
        while not self._stop.is_set():
            try:
                if not seeded:  # DIGEST_CHANNEL, once the database answers
                    self.service.seed_from_settings()
                    seeded = True
                self.service.tick()
            except DB_DOWN_ERRORS as error:  # the database is down: one line per outage, retried
                self.service.tick_failed(error)
            except Exception as error:  # a bug: keep its traceback, and keep the thread alive
                log.exception("digest tick failed; trying again next minute")
                self.service.tick_failed(error)
            else:
                self.service.tick_succeeded()
            self.ticks += 1
            self._stop.wait(self._until_next())

    def _until_next(self) -> float:
        now = self.timer()
        return self.interval - (now % self.interval) + self.offset if self.interval >= 60 else self.interval
