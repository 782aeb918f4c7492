"""Caching of the language list: TTL freshness, single-flight, and last-known-good.

`LanguageCache` is the interface the client uses; `InProcessCache` implements it
with cachetools for one process. A Redis implementation (several processes, one
upstream call per TTL for all of them) lives in `bot/shared/`.

Semantics every implementation keeps:
- `get(load)` returns the cached list while it is fresh; otherwise exactly one
  caller runs `load()` and every concurrent caller gets that same result.
- A failed load is a result too (a `DeskError`), kept for a few seconds
  (`error_ttl`): cachetools does not cache exceptions, so without this the N waiters
  of a failed load would each call Desk again in turn.
- `newer_than` (a refresh) ignores a list fetched before that moment, but still
  joins a load already in flight and still goes through the same single flight.
  It does not skip a cached error: during an outage, a refresh storm would otherwise
  start one hanging call after another and hold every other command behind them.
- `last_good()` is the newest successful list, kept up to `stale_max` seconds, for
  stale-if-error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import cachetools

from bot.desk.errors import DeskError, TransportCode
from bot.desk.models import LanguageList

Loader = Callable[[], LanguageList]
Result = LanguageList | DeskError
_KEY = "languages"


def error_ttl_for(error: DeskError, error_ttl: float) -> float:
    """How long a failed load is shared: a busy local limiter clears within a second."""
    return min(error_ttl, 1.0) if error.code == TransportCode.LOCAL_RATE_LIMIT else error_ttl


class LanguageCache(Protocol):
    def get(self, load: Loader, *, newer_than: float | None = None) -> Result: ...

    def peek(self) -> LanguageList | None:
        """The fresh list if this process holds one, else None. Never does I/O (ack path)."""
        ...

    def last_good(self) -> LanguageList | None: ...


class InProcessCache:
    def __init__(
        self,
        *,
        ttl: float,
        stale_max: float,
        error_ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._error_ttl = min(error_ttl, ttl) if ttl > 0 else 0.0
        self._lock = threading.Lock()
        self._fresh: cachetools.TLRUCache[str, Result] = cachetools.TLRUCache(
            maxsize=1, ttu=self._expires, timer=clock
        )
        self._last_good: cachetools.TTLCache[str, LanguageList] = cachetools.TTLCache(
            maxsize=1, ttl=max(stale_max, 1e-9), timer=clock
        )
        # One upstream call for all concurrent misses: cachetools' condition= single flight.
        self._single_flight = cachetools.cached(
            self._fresh,
            key=lambda load: _KEY,
            lock=self._lock,
            condition=threading.Condition(self._lock),
        )(self._run)

    def _expires(self, _key: str, value: Result, now: float) -> float:
        if isinstance(value, LanguageList):
            return now + self._ttl
        return now + error_ttl_for(value, self._error_ttl)

    def _run(self, load: Loader) -> Result:
        try:
            fetched = load()
        except DeskError as error:
            return error
        with self._lock:
            self._last_good[_KEY] = fetched
        return fetched

    def get(self, load: Loader, *, newer_than: float | None = None) -> Result:
        if newer_than is not None:
            with self._lock:
                held = self._fresh.get(_KEY)
                if isinstance(held, LanguageList) and held.fetched_at < newer_than:
                    self._fresh.pop(_KEY, None)
        result: Result = self._single_flight(load)
        return result

    def store(self, result: Result) -> None:
        """Hold a result loaded elsewhere (e.g. just before a shared cache failed)."""
        with self._lock:
            self._fresh[_KEY] = result
            if isinstance(result, LanguageList):
                self._last_good[_KEY] = result

    def peek(self) -> LanguageList | None:
        with self._lock:
            held = self._fresh.get(_KEY)
        return held if isinstance(held, LanguageList) else None

    def last_good(self) -> LanguageList | None:
        with self._lock:
            return self._last_good.get(_KEY)
