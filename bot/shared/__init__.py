"""State shared by several bot processes through Redis: the Desk rate limit and the language cache.

Tencent's limit (5 calls per second) is per app, not per process, so once the bot
runs as several processes (WEB_CONCURRENCY > 1, or several dynos) each process's
own limiter and cache would multiply the upstream traffic. With REDIS_URL set,
the composition root (`bot/boot.py`) builds these instead of the in-process ones:

- `RedisLimiter`: one sliding-window log per SDKAppID for all processes together;
- `RedisCache`: one fresh list and one last-known-good list per SDKAppID, refreshed
  by one process at a time under a short Redis lock;
- `RedisConnection`: the Redis client both use, and the one place that knows
  whether Redis currently works (`status()`, `redis_status()` for /healthz).

When Redis fails, both fall back to their in-process counterparts (a warning is
logged once per outage) and go back to Redis when it answers again.
"""

from bot.shared.cache import RedisCache
from bot.shared.connection import (
    RedisConnection,
    connection_for,
    forget_connections,
    redis_options,
    redis_status,
)
from bot.shared.limiter import RedisLimiter

__all__ = [
    "RedisCache",
    "RedisConnection",
    "RedisLimiter",
    "connection_for",
    "forget_connections",
    "redis_options",
    "redis_status",
]
