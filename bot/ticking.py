"""A daemon thread that runs one unit of background work, then sleeps until the next slot.

The digest and watch tickers are both this: start once, stop on request, keep going whatever
one tick raises (each ticker decides how a failure is logged).
"""

from __future__ import annotations

import logging
import threading
from typing import Self

log = logging.getLogger(__name__)


class Ticker:
    """Subclasses give `name`, `tick_once()` (must not raise) and `delay()` (seconds to the next)."""

    name = "ticker"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0

    def tick_once(self) -> None:
        raise NotImplementedError

    def delay(self) -> float:
        raise NotImplementedError

    def describe(self) -> str:
        return ""

    def start(self) -> Self:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"{self.name}-ticker", daemon=True)
            self._thread.start()
            log.info("%s ticker started%s", self.name, self.describe())
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
            self.tick_once()
            self.ticks += 1
            self._stop.wait(self.delay())
