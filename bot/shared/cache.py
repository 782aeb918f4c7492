"""`RedisCache`: a Desk result cached once for all the bot's processes, in Redis.

It holds one kind of value (`CacheKind`, bot/desk/cache.py): by default the language
list, or another, such as the readiness report. Keys, per SDKAppID and kind
(`desk:cache:<SDKAppID>:…` for the list, `desk:cache:<SDKAppID>:<kind>:…` for others):

- `fresh`: the last result, a value (TTL `ttl`, `DESK_CACHE_TTL` for the list) or an
  error (TTL `error_ttl`, a few seconds: the negative cache, shared by all processes);
- `good`: the last successful value (TTL `DESK_STALE_MAX`), for stale-if-error;
- `lock`: held (SET NX PX, a random token) by the one process fetching from Desk.

`invalidate()` deletes `fresh` (after a write): every process's next `get()` loads again.
`good` stays: it is only ever served marked stale. When Redis cannot be reached, the
deletion is done as soon as it can be again, if `fresh` still holds a value from before
(`peek()` in other processes, which does no I/O, may show their last value until it expires).

Single flight, across processes: a caller that finds no usable `fresh` value
takes the lock and loads; callers in other processes that find the lock taken
poll `fresh` every 25 ms until the holder has stored its result (then they use
it) or released the lock without one (then one of them takes over), waiting at
most `wait` seconds (then they get a `read-timeout` error, and the client serves
the last good list). The holder stores the result and releases the lock in one
Lua script. So N processes make one Desk call per TTL, not N. Within a process,
concurrent callers share one such flight (50 threads make one lock attempt).

`newer_than` keeps `InProcessCache`'s meaning: a refresh ignores a list fetched
before `newer_than` (but not a negatively cached error), and accepts the result of
a load that was in flight when it arrived (here: one in any process).

When Redis fails, the cache behaves exactly like `InProcessCache` (which it
uses), `RedisConnection` logs one warning per outage and tries Redis again every
few seconds. A result loaded just before Redis failed is handed to the in-process
cache, so the fall-back does not cost an extra Desk call.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Generic, cast, overload

import redis

from bot.desk.cache import LANGUAGES, CachedValue, CacheKind, InProcessCache, V
from bot.desk.errors import DeskError, TransportCode, error_from_dict, error_to_dict, transport_error
from bot.desk.models import Language, LanguageList
from bot.shared.connection import RedisConnection

POLL_INTERVAL = 0.025  # seconds between looks at another process's refresh
# What a value read back from Redis may be (see `_decode`): far above any list Desk returns
# (a few hundred bytes), so only values this bot did not write are refused.
MAX_VALUE_BYTES = 256 * 1024
MAX_LANGUAGES = 1000
MAX_TAG_LENGTH = 256
CLOCK_SKEW = 5.0  # seconds another process's clock may be ahead of ours

# KEYS: fresh, good, lock. ARGV: fresh value, its TTL (ms), good value or "", its TTL (ms), lock token.
_STORE_AND_UNLOCK = """
if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
if ARGV[3] ~= '' and tonumber(ARGV[4]) > 0 then redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4]) end
if redis.call('GET', KEYS[3]) == ARGV[5] then redis.call('DEL', KEYS[3]) end
return 1
"""
# KEYS: lock. ARGV: token. Deletes the lock only if it is still ours (it may have expired).
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass
class _Flight(Generic[V]):
    """One resolution shared by the concurrent callers of one process."""

    done: threading.Event = field(default_factory=threading.Event)
    result: V | DeskError | None = None
    stamp: float = 0.0  # wall time the result stands for: a list's fetched_at, an error's time
    fallback: bool = False  # Redis failed before anything was loaded: use the in-process cache


class RedisCache(Generic[V]):
    """A `Cache` of one kind of value (the language list unless `kind` is given), shared by
    every process that uses the same Redis and SDKAppID."""

    @overload
    def __init__(
        self: RedisCache[LanguageList],
        connection: RedisConnection,
        *,
        sdkappid: int,
        ttl: float,
        stale_max: float,
        error_ttl: float = ...,
        wait: float = ...,
        lock_ttl: float | None = ...,
        clock: Callable[[], float] = ...,
    ) -> None: ...

    @overload
    def __init__(
        self,
        connection: RedisConnection,
        *,
        kind: CacheKind[V],
        sdkappid: int,
        ttl: float,
        stale_max: float,
        error_ttl: float = ...,
        wait: float = ...,
        lock_ttl: float | None = ...,
        clock: Callable[[], float] = ...,
    ) -> None: ...

    def __init__(
        self,
        connection: RedisConnection,
        *,
        kind: CacheKind[Any] = LANGUAGES,
        sdkappid: int,
        ttl: float,
        stale_max: float,
        error_ttl: float = 5.0,
        wait: float = 3.0,
        lock_ttl: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        prefix = f"desk:cache:{sdkappid}:{kind.name}" if kind.name else f"desk:cache:{sdkappid}"
        self.fresh_key, self.good_key, self.lock_key = f"{prefix}:fresh", f"{prefix}:good", f"{prefix}:lock"
        self._kind: CacheKind[V] = kind
        self._connection = connection
        self._ttl = ttl
        self._error_ttl = min(error_ttl, ttl) if ttl > 0 else 0.0
        self._stale_max = stale_max
        self._wait = wait
        # Longer than the holder's load can take, so a second process does not load as well;
        # short enough that a crashed holder delays the others by little.
        self._lock_ms = max(1, int((lock_ttl if lock_ttl is not None else wait + 1.0) * 1000))
        self._clock = clock
        self._local: InProcessCache[V] = InProcessCache(ttl=ttl, stale_max=stale_max, error_ttl=error_ttl)
        self._mutex = threading.Lock()
        self._flight: _Flight[V] | None = None
        self._seen_good: V | None = None  # for last_good() while Redis is down
        self._seen_fresh: V | None = None  # for peek(), which must not do I/O
        self._invalidated_at: float | None = None  # an invalidation Redis has not seen yet
        client = connection.client
        self._store_and_unlock = client.register_script(_STORE_AND_UNLOCK)
        self._unlock = client.register_script(_UNLOCK)
        connection.on_recovery(self._invalidate_on_recovery)
        _listener_for(connection).register(self.fresh_key, self._forget_local)

    # --- Cache --------------------------------------------------------------------------
    def get(self, load: Callable[[], V], *, newer_than: float | None = None) -> V | DeskError:
        while True:
            if not self._connection.usable():
                return self._local.get(load, newer_than=newer_than)
            with self._mutex:
                flight = self._flight
                leading = flight is None
                if flight is None:
                    flight = self._flight = _Flight[V]()
            if leading:
                try:
                    self._lead(flight, load, newer_than)
                finally:
                    with self._mutex:
                        self._flight = None
                    flight.done.set()
            else:
                flight.done.wait()
            if flight.fallback:
                return self._local.get(load, newer_than=newer_than)
            if flight.result is not None and _satisfies(flight.result, newer_than):
                return flight.result
            # A refresh joined a flight that answered from an older cached value (or the
            # leader failed unexpectedly): resolve again, usually as the leader this time.

    def peek(self) -> V | None:
        """The fresh value this process last saw in Redis (or holds while Redis is down); no I/O."""
        with self._mutex:
            seen = self._seen_fresh
        # Stored with PX ttl right after it was fetched, so the Redis copy expires about now.
        if seen is not None and self._clock() >= seen.fetched_at + self._ttl:
            seen = None
        held = self._local.peek()
        if held is None or (seen is not None and seen.fetched_at > held.fetched_at):
            return seen
        return held

    def last_good(self) -> V | None:
        candidates = [self._local.last_good(), self._seen_good]
        if self._connection.usable():
            try:
                raw = self._connection.client.get(self.good_key)
            except redis.RedisError as error:
                self._connection.failed(error, "cache read")
            else:
                self._connection.succeeded()
                decoded = self._decode(raw, max_age=self._stale_max)
                if decoded is not None and not isinstance(decoded[0], DeskError):
                    candidates.append(decoded[0])
        known = [item for item in candidates if item is not None]
        newest = max(known, key=lambda item: item.fetched_at, default=None)
        if newest is not None:
            self._remember(newest)
        return newest

    def invalidate(self) -> None:
        self._local.invalidate()
        with self._mutex:
            self._seen_fresh = None
            self._invalidated_at = self._clock()
        if self._connection.usable():
            self._delete_fresh()

    def _forget_local(self) -> None:
        """Another process invalidated this value: drop what this process holds of it (peek's copy
        included, so an answer in a Slack ack does not show the old value)."""
        self._local.invalidate()
        with self._mutex:
            self._seen_fresh = None

    def _delete_fresh(self) -> None:
        """Delete `fresh` in Redis if it holds nothing newer than the pending invalidation, and
        tell every other process (pub/sub) to drop its own copy."""
        with self._mutex:
            since = self._invalidated_at
        if since is None:
            return
        client = self._connection.client
        try:
            held = self._decode(client.get(self.fresh_key), max_age=self._ttl)
            if held is None or held[1] <= since:
                client.delete(self.fresh_key)
            client.publish(INVALIDATIONS, self.fresh_key)
        except redis.RedisError as error:
            self._connection.failed(error, "cache invalidation")
            return
        self._connection.succeeded()
        with self._mutex:
            if self._invalidated_at == since:
                self._invalidated_at = None

    def _invalidate_on_recovery(self) -> None:
        with self._mutex:
            pending = self._invalidated_at is not None
        if pending:
            self._delete_fresh()

    # --- one flight ---------------------------------------------------------------------
    def _lead(self, flight: _Flight[V], load: Callable[[], V], newer_than: float | None) -> None:
        try:
            flight.result, flight.stamp = self._resolve(load, newer_than)
        except redis.RedisError as error:
            self._connection.failed(error, "cache")
            flight.fallback = True

    def _resolve(self, load: Callable[[], V], newer_than: float | None) -> tuple[V | DeskError, float]:
        """A usable cached value, or one loaded by us or by another process. Raises RedisError
        only when nothing was loaded, so the caller can fall back without a second load."""
        client = self._connection.client
        token = secrets.token_hex(16)
        give_up = time.monotonic() + self._wait
        while True:
            held = self._usable(client.get(self.fresh_key), newer_than)
            if held is not None:
                self._connection.succeeded()
                return held
            if client.set(self.lock_key, token, nx=True, px=self._lock_ms):
                self._connection.succeeded()
                return self._load_locked(load, newer_than, token)
            if time.monotonic() >= give_up:
                error = transport_error(
                    TransportCode.READ_TIMEOUT, f"another bot process did not finish fetching within {self._wait:g} s"
                )
                return error, self._clock()
            time.sleep(POLL_INTERVAL)

    def _load_locked(
        self, load: Callable[[], V], newer_than: float | None, token: str
    ) -> tuple[V | DeskError, float]:
        client = self._connection.client
        try:
            # The previous holder may have stored its result between our GET and our SET.
            held = self._usable(client.get(self.fresh_key), newer_than)
            if held is not None:
                self._unlock(keys=[self.lock_key], args=[token])
                return held
            result = self._load(load)
        except BaseException:
            with suppress(redis.RedisError):
                self._unlock(keys=[self.lock_key], args=[token])
            raise
        stamp = self._clock() if isinstance(result, DeskError) else result.fetched_at
        self._note_fresh(result)
        try:
            self._store(result, stamp, token)
        except redis.RedisError as error:
            self._connection.failed(error, "cache write")
            self._hand_to_local(result)
        else:
            self._connection.succeeded()
        return result, stamp

    def _load(self, load: Callable[[], V]) -> V | DeskError:
        try:
            fetched = load()
        except DeskError as error:
            return error
        self._remember(fetched)
        return fetched

    def _store(self, result: V | DeskError, stamp: float, token: str) -> None:
        if isinstance(result, DeskError):
            fresh, fresh_ttl = _encode_error(result, stamp), self._error_ttl
            good, good_ttl = "", 0.0
        else:
            fresh, fresh_ttl = result.to_json(), self._ttl
            good, good_ttl = fresh, self._stale_max
        self._store_and_unlock(
            keys=[self.fresh_key, self.good_key, self.lock_key],
            args=[fresh, _ms(fresh_ttl), good, _ms(good_ttl), token],
        )

    def _hand_to_local(self, result: V | DeskError) -> None:
        """Put a result loaded just before Redis failed into the in-process cache."""

        self._local.store(result)

    # --- values -------------------------------------------------------------------------
    def _usable(self, raw: Any, newer_than: float | None) -> tuple[V | DeskError, float] | None:
        # Stored with PX ttl (an error with less) right after it was made: older is not ours.
        decoded = self._decode(raw, max_age=self._ttl)
        if decoded is None:
            return None
        result = decoded[0]
        self._note_fresh(result)
        return decoded if _satisfies(result, newer_than) else None

    def _note_fresh(self, result: V | DeskError) -> None:
        with self._mutex:
            if isinstance(result, DeskError):
                self._seen_fresh = None  # as InProcessCache: a held error means no fresh value
            elif self._seen_fresh is None or result.fetched_at >= self._seen_fresh.fetched_at:
                self._seen_fresh = result
        if not isinstance(result, DeskError):
            self._remember(result)

    def _remember(self, fetched: V) -> None:
        with self._mutex:
            if self._seen_good is None or fetched.fetched_at > self._seen_good.fetched_at:
                self._seen_good = fetched
            if self._clock() - self._seen_good.fetched_at > self._stale_max:
                self._seen_good = None


    def _decode(self, raw: Any, *, max_age: float) -> tuple[V | DeskError, float] | None:
        """A stored value, or None when there is none or it is not one this bot could have written.

        Whatever is in Redis is untrusted (another bot version, a person with redis-cli, an attacker
        with access to it): any byte string becomes a valid entry or a miss, never an exception. A
        value is a miss when it is larger than `MAX_VALUE_BYTES`, not strict JSON (NaN or Infinity
        included), not of the shape and types `_store` writes (keys it does not write are ignored:
        a newer version may add some), or stamped outside [now - max_age - skew, now + skew]: a
        stamp in the future would keep it fresh forever, an older one has outlived its TTL.
        """
        if raw is None or not isinstance(raw, bytes | str) or len(raw) > MAX_VALUE_BYTES:
            return None
        try:
            data = json.loads(raw, parse_constant=_refuse_constant)
            found: tuple[V | DeskError, float] | None
            if isinstance(data, dict) and "error" in data:
                found = _decode_error(data)
            elif self._kind is LANGUAGES:
                found = cast("tuple[V, float] | None", _decode_list(data))
            else:
                value = self._kind.decode(raw)
                stamp = _number(value.fetched_at)
                found = None if stamp is None else (value, stamp)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError, RecursionError):
            return None  # json.loads: ValueError (UnicodeDecodeError too), RecursionError when deeply nested
        if found is None:
            return None
        now = self._clock()
        if not (now - max_age - CLOCK_SKEW <= found[1] <= now + CLOCK_SKEW):
            return None
        return found


INVALIDATIONS = "desk:cache:invalidated"  # pub/sub channel: the `fresh` key another process invalidated


class _InvalidationListener:
    """One daemon thread per Redis connection, subscribed to INVALIDATIONS, that tells the caches
    of this process which value another process invalidated. A message lost while Redis is down
    costs at most the value's TTL (the `fresh` key itself is gone already)."""

    def __init__(self, connection: RedisConnection) -> None:
        self._connection = connection
        self._callbacks: dict[str, list[Callable[[], None]]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def register(self, key: str, callback: Callable[[], None]) -> None:
        with self._lock:
            self._callbacks.setdefault(key, []).append(callback)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cache-invalidations", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                pubsub = self._connection.client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(INVALIDATIONS)
                while True:
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._deliver(message.get("data"))
            except (redis.RedisError, OSError, ValueError):
                time.sleep(1.0)  # Redis is down or restarting: subscribe again shortly

    def _deliver(self, data: Any) -> None:
        key = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
        with self._lock:
            callbacks = list(self._callbacks.get(key, ()))
        for callback in callbacks:
            callback()


_listeners: dict[int, _InvalidationListener] = {}
_listeners_lock = threading.Lock()


def _listener_for(connection: RedisConnection) -> _InvalidationListener:
    with _listeners_lock:
        listener = _listeners.get(id(connection))
        if listener is None:
            listener = _listeners[id(connection)] = _InvalidationListener(connection)
        return listener


def _satisfies(result: CachedValue | DeskError, newer_than: float | None) -> bool:
    """Whether a caller asking for a value fetched no earlier than `newer_than` may take this result."""
    if newer_than is None:
        return True
    if isinstance(result, DeskError):
        # A cached error is shared with refreshes too: it lives only `error_ttl` seconds.
        return True
    return result.fetched_at >= newer_than


def _ms(seconds: float) -> int:
    return max(0, int(seconds * 1000))


def _encode_error(error: DeskError, stamp: float) -> str:
    return json.dumps({"error": error_to_dict(error), "at": stamp})


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a value this bot writes")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)  # OverflowError for an int too large for a float
    return number if math.isfinite(number) else None


def _optional_text(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError("not a string")
    return value


def _decode_list(data: Any) -> tuple[LanguageList, float] | None:
    if not isinstance(data, dict):
        return None
    items, fetched_at = data["languages"], _number(data["fetched_at"])
    if not isinstance(items, list) or len(items) > MAX_LANGUAGES or fetched_at is None:
        return None
    languages = []
    for item in items:
        if not (isinstance(item, list) and len(item) == 2):
            return None
        tag, is_default = item
        if not (isinstance(tag, str) and len(tag) <= MAX_TAG_LENGTH and isinstance(is_default, bool)):
            return None
        languages.append(Language.of(tag, is_default))
    fetched = LanguageList.build(languages, fetched_at, _optional_text(data.get("request_id")))
    return fetched, fetched_at


def _decode_error(data: dict[str, Any]) -> tuple[DeskError, float] | None:
    error, at = data["error"], _number(data["at"])
    if not isinstance(error, dict) or at is None:
        return None
    code = error["code"]
    if isinstance(code, int) and not isinstance(code, bool) and not -(2**31) <= code < 2**31:
        return None
    for text in ("error_info", "request_id", "detail"):
        _optional_text(error.get(text))  # a wrong type is a miss, not a coerced string
    found = error_from_dict(error)
    return None if found is None else (found, at)
