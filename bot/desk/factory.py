"""Builds a `DeskClient` from `Settings`: credentials, region, limiter and cache.

This is the one place that decides, at start-up, where shared state lives (in
process, or in Redis when REDIS_URL is set) and whether to talk to Tencent or to
the embedded Desk emulator (DESK_SANDBOX=1).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

from bot.config import Secret, Settings
from bot.desk.cache import InProcessCache, LanguageCache
from bot.desk.client import DeskClient
from bot.desk.limiter import InProcessLimiter, RateLimiter
from bot.desk.regions import REGIONS
from bot.desk.usersig import UserSigSource

_sandbox_lock = threading.Lock()
_sandbox_url: str | None = None


def resolve_sandbox(settings: Settings) -> Settings:
    """With DESK_SANDBOX=1, start the embedded emulator (once per process) and point at it."""
    global _sandbox_url
    if not settings.sandbox:
        return settings
    from bot.desk.sandbox import SANDBOX_ADMINS, SANDBOX_KEY, SANDBOX_SDKAPPID, DeskEmulator

    with _sandbox_lock:
        if _sandbox_url is None:
            _sandbox_url = DeskEmulator().start().base_url
    return replace(
        settings,
        sdkappid=SANDBOX_SDKAPPID,
        identifier=SANDBOX_ADMINS[0],
        secret_key=Secret(SANDBOX_KEY),
        usersig=None,
        api_url=_sandbox_url,
    )


def region_label(settings: Settings) -> str:
    if settings.sandbox:
        return "sandbox (embedded Desk emulator)"
    if settings.api_url:
        return f"custom URL ({REGIONS[settings.region].label})"
    return REGIONS[settings.region].label


def build_desk_client(
    settings: Settings,
    *,
    limiter: RateLimiter | None = None,
    cache: LanguageCache | None = None,
) -> DeskClient:
    settings = resolve_sandbox(settings)
    usersig = UserSigSource(
        sdkappid=settings.sdkappid,
        identifier=settings.identifier,
        key=settings.secret_key.value if settings.secret_key else None,
        usersig=settings.usersig.value if settings.usersig else None,
    )
    base_urls = [settings.api_url] if settings.api_url else list(REGIONS[settings.region].base_urls)
    shared_state_health: Callable[[], str] | None = None
    if settings.redis_url is not None and (limiter is None or cache is None):
        limiter, cache, shared_state_health = _shared_parts(settings, limiter, cache)
    return DeskClient(
        sdkappid=settings.sdkappid,
        identifier=settings.identifier,
        usersig=usersig,
        base_urls=base_urls,
        limiter=limiter or InProcessLimiter(settings.rate_limit),
        cache=cache or InProcessCache(ttl=settings.cache_ttl, stale_max=settings.stale_max),
        timeout=settings.timeout,
        stale_max=settings.stale_max,
        shared_state_health=shared_state_health,
    )


def _shared_parts(
    settings: Settings, limiter: RateLimiter | None, cache: LanguageCache | None
) -> tuple[RateLimiter, LanguageCache, Callable[[], str]]:
    """The Redis-backed limiter and cache (REDIS_URL is set), shared by all processes, and
    the /healthz probe of their Redis ("ok" or "degraded")."""
    from bot.shared import RedisCache, RedisLimiter, connection_for

    connection = connection_for(settings)
    if limiter is None:
        limiter = RedisLimiter(connection, sdkappid=settings.sdkappid, calls_per_second=settings.rate_limit)
    if cache is None:
        cache = RedisCache(
            connection,
            sdkappid=settings.sdkappid,
            ttl=settings.cache_ttl,
            stale_max=settings.stale_max,
            # Other processes wait about as long as the holder's fetch may take (its retry budget).
            wait=settings.timeout + 1.5,
        )
    return limiter, cache, connection.status
