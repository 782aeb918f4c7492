"""`RedisLimiter`: one Desk rate limit for all the bot's processes, kept in Redis.

Every process takes its permits from the same pyrate-limiter `RedisBucket`, a
sliding-window log (a sorted set of permit times, checked and appended to in one
Lua script), one per SDKAppID and API (Tencent's limit is per API, docs/desk-api.md §2):
`desk:rl:<SDKAppID>` for `robot_get_language_list` (the key it has always had, so processes
of an older version still share it during a rolling deploy) and `desk:rl:<SDKAppID>:<API>`
for the others (`robot_add_language`, `list_faq`, …). So all processes together never take
more than `DESK_RATE_LIMIT` permits in any window of 1 s plus the margin of
`desk_rates()`, and there is no burst above the limit (a token bucket would
allow one, docs/slack-platform.md §9). Permit times come from each host's clock: dynos
need synchronised clocks, which every platform provides.

When Redis fails (down at start-up, dropped mid-run, slower than the socket
timeout), permits come from an in-process limiter at the same rate, and
`RedisConnection` logs one warning for the outage and tries Redis again every
few seconds. The trade-off: during an outage each process limits itself alone,
so N processes could together reach N times the limit. With the shared cache
also falling back, each process makes about one Desk call per cache TTL, so
this is far from the limit in practice, and a -14 that still happens is retried
by the client after a 1-1.5 s back-off. Refusing all Desk calls instead would
take the bot down with Redis, which is worse. When Redis answers again, the
permits taken locally in the last window are added to the shared log first, so
the way back does not add a burst of its own (done as soon as this process sees
Redis working again, whichever part of the bot noticed).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import deque

import redis
from pyrate_limiter import Limiter, Rate, RedisBucket
from pyrate_limiter.buckets.redis_bucket import LuaScript
from pyrate_limiter.limiter import SingleBucketFactory

from bot.desk.apis import Api
from bot.desk.limiter import LIMITER_NAME, InProcessLimiter, RateLimiter, desk_rates
from bot.shared.connection import RedisConnection

log = logging.getLogger(__name__)

TRIM_INTERVAL = 5.0  # seconds between removals of permit entries older than any window

# pyrate-limiter's script counts the entries between the window start and the new item's
# timestamp. Across processes that undercounts: an item stamped at t but arriving at Redis
# after another process's item stamped t+1 ms does not see it (observed: 6 permits within
# 40 ms for 3 processes at 5/s). Counting to +inf counts every entry since the window start.
_LIBRARY_COUNT = "redis.call('ZCOUNT', bucket, window_start, now)"
PUT_ITEM_SCRIPT = LuaScript.PUT_ITEM.replace(_LIBRARY_COUNT, "redis.call('ZCOUNT', bucket, window_start, '+inf')")
SCRIPT_PATCHED = PUT_ITEM_SCRIPT != LuaScript.PUT_ITEM  # False: a pyrate-limiter upgrade changed it


class SharedRedisBucket(RedisBucket):
    """pyrate-limiter's `RedisBucket` (sliding-window log in Redis), counting entries of every
    process that fall in the window, whatever their timestamps' order."""

    @classmethod
    def init(  # type: ignore[override]
        cls, rates: list[Rate], client: redis.Redis, bucket_key: str
    ) -> SharedRedisBucket:
        return cls(rates, client, bucket_key, client.script_load(PUT_ITEM_SCRIPT))


def limiter_key(sdkappid: int, api: Api = Api.LANGUAGES) -> str:
    """The Redis key of one API's shared sliding-window log."""
    return f"desk:rl:{sdkappid}" if api is Api.LANGUAGES else f"desk:rl:{sdkappid}:{api.value}"


class RedisLimiter:
    """A `RateLimiter` shared by every process that uses the same Redis, SDKAppID and API."""

    def __init__(
        self,
        connection: RedisConnection,
        *,
        sdkappid: int,
        calls_per_second: int,
        fallback: RateLimiter | None = None,
        api: Api = Api.LANGUAGES,
    ) -> None:
        if not SCRIPT_PATCHED:
            log.error(
                "pyrate-limiter's Redis script changed: processes may together exceed the rate limit; "
                "review bot/shared/limiter.py"
            )
        self.key = limiter_key(sdkappid, api)
        self._connection = connection
        self._rates = desk_rates(calls_per_second)
        self._window_ms = max(rate.interval for rate in self._rates)
        self._fallback = fallback or InProcessLimiter(calls_per_second)
        self._shared: Limiter | None = None
        self._setup_lock = threading.Lock()
        self._next_trim = 0.0
        self._local_grants: deque[int] = deque()  # ms timestamps of permits taken during an outage
        self._local_grants_lock = threading.Lock()
        connection.on_recovery(self._share_local_grants_on_recovery)

    def acquire(self, timeout: float) -> bool:
        deadline = time.monotonic() + max(timeout, 0.0)
        if self._connection.usable():
            try:
                granted = self._acquire_shared(timeout)
            except redis.RedisError as error:
                self._connection.failed(error, "rate limiting")
            else:
                self._connection.succeeded()
                if granted:
                    self._trim()
                return granted
        granted = self._fallback.acquire(max(deadline - time.monotonic(), 0.0))
        if granted:
            with self._local_grants_lock:
                self._local_grants.append(_now_ms())
                while self._local_grants and self._local_grants[0] < _now_ms() - self._window_ms:
                    self._local_grants.popleft()
        return granted

    def _limiter(self) -> Limiter:
        with self._setup_lock:
            if self._shared is None:
                # init() loads the Lua script, so it fails (and is retried later) while Redis is down.
                bucket = SharedRedisBucket.init(self._rates, self._connection.client, self.key)
                # No background leak thread: it would die on the first Redis error. _trim() does its job.
                factory = SingleBucketFactory(bucket, schedule_leak=False)
                self._shared = Limiter(factory, buffer_ms=20)
            return self._shared

    def _acquire_shared(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        limiter = self._limiter()
        if self._local_grants:
            self._share_local_grants()
        try:
            return _try_acquire(limiter, timeout)
        except redis.exceptions.NoScriptError:
            # Redis restarted and lost its script cache: load the script again and go on.
            self._connection.client.script_load(PUT_ITEM_SCRIPT)
            return _try_acquire(limiter, max(deadline - time.monotonic(), 0.0))

    def _share_local_grants_on_recovery(self) -> None:
        try:
            self._share_local_grants()
        except redis.RedisError as error:
            self._connection.failed(error, "rate limiting")

    def _share_local_grants(self) -> None:
        """Add the permits this process took alone during an outage to the shared log."""
        with self._local_grants_lock:
            taken = list(self._local_grants)
            self._local_grants.clear()
        recent = [stamp for stamp in taken if stamp >= _now_ms() - self._window_ms]
        if not recent:
            return
        try:
            self._connection.client.zadd(self.key, {f"local:{secrets.token_hex(8)}": stamp for stamp in recent})
        except redis.RedisError:
            with self._local_grants_lock:
                self._local_grants.extendleft(reversed(taken))
            raise

    def _trim(self) -> None:
        """Drop permits older than any window, and let the key expire when the bot is idle."""
        now = time.monotonic()
        if now < self._next_trim:
            return
        self._next_trim = now + TRIM_INTERVAL
        now_ms = _now_ms()
        try:
            pipe = self._connection.client.pipeline(transaction=False)
            pipe.zremrangebyscore(self.key, 0, now_ms - 2 * self._window_ms)
            # Longer than a trim interval plus a window, so no permit still in a window expires.
            pipe.pexpire(self.key, int(TRIM_INTERVAL * 1000) + 2 * self._window_ms)
            pipe.execute()
        except redis.RedisError as error:
            self._connection.failed(error, "rate-limit clean-up")


def _now_ms() -> int:
    """The clock pyrate-limiter's RedisBucket stamps permits with."""
    return time.time_ns() // 1_000_000


def _try_acquire(limiter: Limiter, timeout: float) -> bool:
    if timeout <= 0:
        return bool(limiter.try_acquire(LIMITER_NAME, blocking=False))
    return bool(limiter.try_acquire(LIMITER_NAME, timeout=timeout))
