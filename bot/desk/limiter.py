"""Rate limiting of calls to Desk: a small interface and its in-process implementation.

Tencent allows 5 calls per second to this API *per app*. Every real HTTP attempt,
retries included, takes a permit first. The window is a sliding log (pyrate-limiter's
`InMemoryBucket`), not a token bucket, because a token bucket lets a burst through
above the limit (docs/slack-platform.md §9). The window is a little longer than one second
(`WINDOW_MARGIN_MS`) so that the delay between taking a permit and the request reaching
Tencent (network jitter, a busy interpreter with many threads) cannot put six of our calls
into one of their one-second windows. 250 ms: at 100 ms, six calls landed in one second at
the emulator in about one run in four of the readiness storm tests; docs/desk-api.md §2 also
advises about 4 calls/s rather than bursts of 5.

A shared implementation for several processes lives in `bot/shared/` (Redis);
the composition root (`bot/boot.py`) picks one at start-up.
"""

from __future__ import annotations

from typing import Protocol

from pyrate_limiter import InMemoryBucket, Limiter, Rate

WINDOW_MARGIN_MS = 250
LIMITER_NAME = "desk"


class RateLimiter(Protocol):
    def acquire(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a permit; False when none came in time."""
        ...


def desk_rates(calls_per_second: int) -> list[Rate]:
    """The rate list every limiter uses: `calls_per_second` per (1 s + margin)."""
    return [Rate(calls_per_second, 1000 + WINDOW_MARGIN_MS)]


class InProcessLimiter:
    """Sliding-window limiter for one process (thread-safe)."""

    def __init__(self, calls_per_second: int) -> None:
        self._limiter = Limiter(InMemoryBucket(desk_rates(calls_per_second)), buffer_ms=20)

    def acquire(self, timeout: float) -> bool:
        if timeout <= 0:
            return bool(self._limiter.try_acquire(LIMITER_NAME, blocking=False))
        return bool(self._limiter.try_acquire(LIMITER_NAME, timeout=timeout))
