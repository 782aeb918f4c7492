"""The Redis connection the shared limiter and cache use, and whether Redis works right now.

One `RedisConnection` per Redis URL and process (`connection_for(url)`) holds:

- the redis-py client, configured so that a slow or missing Redis costs little:
  0.5 s socket and connect timeouts, one immediate reconnect for a pooled
  connection the server has closed (after a Redis restart), never a retry of a
  timeout (redis-py's default would retry three times with backoff);
- the health state every user reports into (`succeeded()` / `failed()`): the first
  failure of an outage logs one warning, the first success after it one info line.
  While Redis is down, `usable()` says no, except to one caller every
  `retry_interval` seconds, which tries Redis again: that is how we reconnect, and
  the other callers meanwhile lose no time on a dead Redis;
- `status()` for /healthz: Redis as it is now, by one PING with a 100 ms timeout,
  its answer kept for `HEALTH_PROBE_INTERVAL` (1 s), whatever other calls last saw;
  concurrent checks share that one PING (the others report the state it last found).

`rediss://` URLs (Heroku Redis) use TLS; `REDIS_TLS_VERIFY=0` accepts a
self-signed certificate, as such platforms present. The URL's password never
reaches a log line: messages name Redis by host and port only, and Redis errors
are scrubbed before they are logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from bot import metrics
from bot.logs import REDACTED, redact

log = logging.getLogger(__name__)

SOCKET_TIMEOUT = 0.5  # seconds for every Redis command: a slow Redis must not hold a Slack reply
PROBE_TIMEOUT = 0.1  # seconds for the /healthz PING
RETRY_INTERVAL = 5.0  # seconds between attempts to use Redis again during an outage
HEALTH_PROBE_INTERVAL = 1.0  # seconds a /healthz PING's answer stands for: a probe storm costs one PING a second

Status = Literal["ok", "degraded"]


def redis_options(url: str, *, tls_verify: bool = True, socket_timeout: float = SOCKET_TIMEOUT) -> dict[str, Any]:
    """Keyword arguments for `redis.Redis.from_url(url, ...)`.

    Query parameters in the URL itself (e.g. `?ssl_cert_reqs=none`) still win, as
    redis-py applies them after these.
    """
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        # A pooled connection that the server closed fails at once with ConnectionError;
        # one immediate retry reconnects. A timeout is not retried: it would double the wait.
        "retry": Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,)),
    }
    if urlsplit(url).scheme == "rediss" and not tls_verify:
        # Heroku-style Redis presents a self-signed certificate: encrypt, but do not verify.
        options["ssl_cert_reqs"] = "none"
        options["ssl_check_hostname"] = False
    return options


def describe_url(url: str) -> str:
    """`host:port` (and `(TLS)`) for log lines: never the user name or password."""
    parts = urlsplit(url)
    try:
        port = parts.port or 6379
    except ValueError:
        port = 6379
    text = f"{parts.hostname or 'localhost'}:{port}"
    return text + " (TLS)" if parts.scheme == "rediss" else text


class RedisConnection:
    """A Redis client plus the process's view of whether Redis works (thread-safe)."""

    def __init__(
        self,
        url: str,
        *,
        tls_verify: bool = True,
        socket_timeout: float = SOCKET_TIMEOUT,
        retry_interval: float = RETRY_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.where = describe_url(url)
        self.client: redis.Redis = redis.Redis.from_url(
            url, **redis_options(url, tls_verify=tls_verify, socket_timeout=socket_timeout)
        )
        # A separate small pool for /healthz, so its 100 ms timeout never affects real work.
        self._probe_client: redis.Redis = redis.Redis.from_url(
            url, **redis_options(url, tls_verify=tls_verify, socket_timeout=PROBE_TIMEOUT)
        )
        parts = urlsplit(url)
        self._credentials = [unquote(bit) for bit in (parts.password, parts.username) if bit]
        self.retry_interval = retry_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._probe_lock = threading.Lock()
        self._healthy = True  # optimistic: the first use finds out
        self._next_try = 0.0
        self._last_probe: float | None = None
        self._down_since = 0.0
        self.outages = 0  # how many times Redis went from working to failing
        self._on_recovery: list[Callable[[], None]] = []
        metrics.shared_state_up(True)

    def on_recovery(self, callback: Callable[[], None]) -> None:
        """Call `callback` (which reports its own Redis errors) each time Redis works again."""
        with self._lock:
            self._on_recovery.append(callback)

    # --- reported by the users of the client ---------------------------------------------
    def usable(self) -> bool:
        """Should the caller try Redis now? During an outage, yes for one caller per interval."""
        with self._lock:
            if self._healthy:
                return True
            now = self._clock()
            if now < self._next_try:
                return False
            self._next_try = now + self.retry_interval
            return True

    def succeeded(self) -> None:
        with self._lock:
            recovered = not self._healthy
            self._healthy = True
            metrics.shared_state_up(True)
            now = self._clock()
            down_for = now - self._down_since
            callbacks = list(self._on_recovery) if recovered else []
        if recovered:
            log.info(
                "Redis at %s is reachable again after %.0f s; sharing rate limit and cache again", self.where, down_for
            )
        for callback in callbacks:
            callback()

    def failed(self, error: BaseException, during: str) -> None:
        with self._lock:
            first = self._healthy
            self._healthy = False
            metrics.shared_state_up(False)
            now = self._clock()
            self._next_try = now + self.retry_interval
            if first:
                self._down_since = now
                self.outages += 1
        if first:
            log.warning(
                "Redis at %s is unavailable (%s, during %s); this process uses its own rate limit "
                "and cache until Redis is back (checking every %.0f s)",
                self.where,
                self.safe_text(error),
                during,
                self.retry_interval,
            )
        else:
            log.debug("Redis at %s still unavailable (%s)", self.where, self.safe_text(error))

    def safe_text(self, error: BaseException) -> str:
        """The error's type and message, without the URL's credentials."""
        text = f"{type(error).__name__}: {error}"
        for credential in self._credentials:
            text = text.replace(credential, REDACTED)
        return redact(text)

    # --- health ------------------------------------------------------------------------
    @property
    def healthy(self) -> bool:
        with self._lock:
            return self._healthy

    def status(self) -> Status:
        """`"ok"` or `"degraded"` as of a PING at most `HEALTH_PROBE_INTERVAL` old.

        Not the state the last real call left: a call that worked 4 s ago says nothing about
        a Redis that died since. The PING has its own 100 ms client, so it never waits long.
        """
        with self._lock:
            now = self._clock()
            # Never slower than the outage retry: a probe is also how a process notices Redis is back.
            interval = min(HEALTH_PROBE_INTERVAL, self.retry_interval)
            due = self._last_probe is None or now - self._last_probe >= interval
        # Concurrent health checks share one probe; the others report the state it last found.
        if due and self._probe_lock.acquire(blocking=False):
            try:
                self._probe_client.ping()
            except redis.RedisError as error:
                self.failed(error, "health check")
            else:
                self.succeeded()
            finally:
                with self._lock:
                    self._last_probe = self._clock()
                self._probe_lock.release()
        return "ok" if self.healthy else "degraded"

    def close(self) -> None:
        self.client.close()
        self._probe_client.close()


_registry_lock = threading.Lock()
_registry: dict[tuple[str, bool], RedisConnection] = {}


def connection_for(url: str, *, tls_verify: bool = True) -> RedisConnection:
    """The process's `RedisConnection` for `url` (one per URL and TLS setting, reused)."""
    key = (url, tls_verify)
    with _registry_lock:
        connection = _registry.get(key)
        if connection is None:
            connection = _registry[key] = RedisConnection(key[0], tls_verify=key[1])
        return connection


def redis_status() -> Status | None:
    """For /healthz: `None` when this process uses no Redis, else `"ok"` or `"degraded"`."""
    with _registry_lock:
        connections = list(_registry.values())
    if not connections:
        return None
    statuses = [connection.status() for connection in connections]
    return "ok" if all(status == "ok" for status in statuses) else "degraded"


def forget_connections() -> None:
    """Close and drop this process's connections (tests; a process that re-reads its settings)."""
    with _registry_lock:
        connections = list(_registry.values())
        _registry.clear()
    for connection in connections:
        connection.close()
