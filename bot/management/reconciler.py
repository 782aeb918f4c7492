"""The in-process reconciler of language changes: a daemon thread that runs
`LanguageManager.reconcile()` every 30 s, beside the digest and watch tickers (DIGEST_TICKER=0
turns them all off).

It records outcomes this process got from Desk while the database was down, and any process's
request left `applying` by a crash; `ChangeStore.settle` makes each recorded once across processes.
"""

from __future__ import annotations

import logging

from bot.database import DB_DOWN_ERRORS
from bot.management.service import LanguageManager
from bot.ticking import Ticker

log = logging.getLogger(__name__)

RECONCILE_INTERVAL = 30.0  # seconds


class ChangeReconciler(Ticker):
    name = "language-changes"

    def __init__(self, manager: LanguageManager, *, interval: float = RECONCILE_INTERVAL) -> None:
        super().__init__()
        self.manager = manager
        self.interval = interval
        self._failing = False

    def describe(self) -> str:
        return f" (reconciling unrecorded changes every {self.interval:g}s)"

    def tick_once(self) -> None:
        try:
            recorded = self.manager.reconcile()
        except DB_DOWN_ERRORS as error:  # the database is still down: one line per outage
            if not self._failing:
                log.warning("language changes could not be reconciled (%s); trying again in %gs. Check DATABASE_URL.",
                            type(error).__name__, self.interval)
            self._failing = True
            return
        except Exception:  # a bug: keep its traceback, and keep the thread alive
            log.exception("reconciling language changes failed; trying again next interval")
            self._failing = True
            return
        if recorded:
            log.info("reconciled %d language change(s) that had not been recorded", recorded)
        self._failing = False

    def delay(self) -> float:
        return self.interval
