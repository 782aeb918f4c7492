"""Caching of Desk results: TTL freshness, single-flight, last-known-good, invalidation.

`Cache[V]` is the interface the client uses, for any kind of value `V` that knows when it
was fetched and how to serialise itself (`CachedValue`): the language list (`LanguageCache`
is `Cache[LanguageList]`) and the readiness report. `InProcessCache` implements it with
cachetools for one process. A Redis implementation (several processes, one upstream call
per TTL for all of them) lives in `bot/shared/`; `CacheKind` names a kind of value there.

Semantics every implementation keeps:
- `get(load)` returns the cached value while it is fresh; otherwise exactly one
  caller runs `load()` and every concurrent caller gets that same result.
- A failed load is a result too (a `DeskError`), kept for a few seconds
  (`error_ttl`): cachetools does not cache exceptions, so without this the N waiters
  of a failed load would each call Desk again in turn.
- `newer_than` (a refresh) ignores a value fetched before that moment, but still
  joins a load already in flight and still goes through the same single flight.
  It does not skip a cached error: during an outage, a refresh storm would otherwise
  start one hanging call after another and hold every other command behind them.
- `last_good()` is the newest successful value, kept up to `stale_max` seconds, for
  stale-if-error.
- `invalidate()` forgets the fresh value (or the cached error), so the next `get()`
  loads: after a write changed what Desk would answer. The last good value is kept,
  because it is only ever served marked stale, with the error that made it so. A load
  already in flight when `invalidate()` is called is still shared with its waiters.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, Self, TypeVar

import cachetools

from bot.desk.errors import DeskError, TransportCode
from bot.desk.models import LanguageList


class CachedValue(Protocol):
    """What a cache can hold: a value that knows when it was fetched and how to be marked."""

    @property
    def fetched_at(self) -> float: ...

    def to_json(self) -> str: ...

    def as_cached(self) -> Self: ...

    def as_stale(self, error: DeskError) -> Self: ...


V = TypeVar("V", bound=CachedValue)
Loader = Callable[[], LanguageList]
Result = LanguageList | DeskError
_KEY = "value"


@dataclass(frozen=True)
class CacheKind(Generic[V]):
    """A kind of cached value, for a shared cache: its name in keys and how to read it back.

    The language list's name is "" (its Redis keys predate kinds); others are in their keys.
    """

    name: str
    decode: Callable[[str | bytes], V]


LANGUAGES: CacheKind[LanguageList] = CacheKind("", LanguageList.from_json)


def error_ttl_for(error: DeskError, error_ttl: float) -> float:
    """How long a failed load is shared: a busy local limiter clears within a second."""
    return min(error_ttl, 1.0) if error.code == TransportCode.LOCAL_RATE_LIMIT else error_ttl


class Cache(Protocol[V]):
    def get(self, load: Callable[[], V], *, newer_than: float | None = None) -> V | DeskError: ...

    def peek(self) -> V | None:
        """The fresh value if this process holds one, else None. Never does I/O (ack path)."""
        ...

    def last_good(self) -> V | None: ...

    def invalidate(self) -> None:
        """Forget the fresh value (in every process, for a shared cache); keep the last good one."""
        ...


LanguageCache = Cache[LanguageList]


class InProcessCache(Generic[V]):
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
        self._fresh: cachetools.TLRUCache[str, V | DeskError] = cachetools.TLRUCache(
            maxsize=1, ttu=self._expires, timer=clock
        )
        self._last_good: cachetools.TTLCache[str, V] = cachetools.TTLCache(
            maxsize=1, ttl=max(stale_max, 1e-9), timer=clock
        )
        # One upstream call for all concurrent misses: cachetools' condition= single flight.
        self._single_flight = cachetools.cached(
            self._fresh,
            key=lambda load: _KEY,
            lock=self._lock,
            condition=threading.Condition(self._lock),
        )(self._run)

    def _expires(self, _key: str, value: V | DeskError, now: float) -> float:
        if isinstance(value, DeskError):
            return now + error_ttl_for(value, self._error_ttl)
        return now + self._ttl

    def _run(self, load: Callable[[], V]) -> V | DeskError:
        try:
            fetched = load()
        except DeskError as error:
            return error
        with self._lock:
            self._last_good[_KEY] = fetched
        return fetched

    def get(self, load: Callable[[], V], *, newer_than: float | None = None) -> V | DeskError:
        if newer_than is not None:
            with self._lock:
                held = self._fresh.get(_KEY)
                if held is not None and not isinstance(held, DeskError) and held.fetched_at < newer_than:
                    self._fresh.pop(_KEY, None)
        result: V | DeskError = self._single_flight(load)
        return result

    def store(self, result: V | DeskError) -> None:
        """Hold a result loaded elsewhere (e.g. just before a shared cache failed)."""
        with self._lock:
            self._fresh[_KEY] = result
            if not isinstance(result, DeskError):
                self._last_good[_KEY] = result

    def peek(self) -> V | None:
        with self._lock:
            held = self._fresh.get(_KEY)
        return None if held is None or isinstance(held, DeskError) else held

    def last_good(self) -> V | None:
        with self._lock:
            return self._last_good.get(_KEY)

    def invalidate(self) -> None:
        with self._lock:
            self._fresh.pop(_KEY, None)
