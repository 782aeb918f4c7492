"""`invalidate()` on both caches: the next `get()` loads again, in every process sharing Redis;
the last good value stays; an invalidation Redis missed is done when it answers again."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from bot.boot import build_desk_client
from bot.desk import DeskError, LanguageList
from bot.desk.cache import InProcessCache
from bot.sandbox.desk_emulator import SANDBOX_SDKAPPID, DeskEmulator, Fault
from bot.shared import RedisCache, RedisConnection, connection_for
from tests.support.environment import make_settings
from tests.support.services import RedisServer

FRESH_KEY = f"desk:cache:{SANDBOX_SDKAPPID}:fresh"
GOOD_KEY = f"desk:cache:{SANDBOX_SDKAPPID}:good"


pytestmark = pytest.mark.usefixtures("no_registered_connections")


def shared(redis_url: str) -> RedisCache[LanguageList]:
    """A process's shared list cache, as the composition root builds it."""
    return RedisCache(connection_for(redis_url), sdkappid=SANDBOX_SDKAPPID, ttl=300, stale_max=600)


def test_in_process_invalidate_makes_the_next_get_load(emulator: DeskEmulator) -> None:
    cache: InProcessCache[LanguageList] = InProcessCache(ttl=60, stale_max=600)
    client = build_desk_client(make_settings(emulator), cache=cache)
    client.get_languages()
    assert client.peek() is not None and len(emulator.calls) == 1
    emulator.set_languages([("en", 1), ("ja", 0)])
    cache.invalidate()
    assert client.peek() is None  # nothing fresh for an instant answer either
    assert client.get_languages().fingerprint == (("en", True), ("ja", False))
    assert len(emulator.calls) == 2


def test_invalidate_forgets_a_cached_error_but_keeps_the_last_good_value(emulator: DeskEmulator) -> None:
    cache: InProcessCache[LanguageList] = InProcessCache(ttl=60, stale_max=600)
    client = build_desk_client(make_settings(emulator), cache=cache)
    good = client.get_languages()
    emulator.inject(Fault(code=60006))
    time.sleep(1.05)
    assert client.get_languages(refresh=True).stale  # the error is now cached for a few seconds
    cache.invalidate()
    assert cache.last_good() is not None and cache.last_good().fingerprint == good.fingerprint  # type: ignore[union-attr]
    assert not client.get_languages().stale  # loaded again instead of sharing the cached error
    assert len(emulator.calls) == 3


def test_invalidate_in_one_process_makes_every_process_load(emulator: DeskEmulator, redis_url: str) -> None:
    settings = make_settings(emulator, REDIS_URL=redis_url)
    caches = shared(redis_url), shared(redis_url)
    first, second = (build_desk_client(settings, cache=cache) for cache in caches)
    first.get_languages()
    assert second.get_languages().from_cache and len(emulator.calls) == 1
    admin = redis.Redis.from_url(redis_url)
    emulator.set_languages([("en", 1), ("vi", 0)])
    caches[0].invalidate()
    assert admin.exists(FRESH_KEY) == 0 and admin.exists(GOOD_KEY) == 1  # good is kept
    changed = second.get_languages()
    assert len(emulator.calls) == 2 and not changed.from_cache
    assert changed.fingerprint == (("en", True), ("vi", False))
    assert first.get_languages().fingerprint == changed.fingerprint and len(emulator.calls) == 2
    admin.close()


def invalidated_while_redis_hangs(emulator: DeskEmulator, redis_process: RedisServer) -> RedisConnection:
    """A process that cached the list, then invalidated it while Redis did not answer."""
    connection = RedisConnection(redis_process.url, retry_interval=0.3)
    cache = RedisCache(connection, sdkappid=SANDBOX_SDKAPPID, ttl=300, stale_max=600)
    build_desk_client(make_settings(emulator), cache=cache).get_languages()
    redis_process.pause()  # accepts connections, never answers: the DEL times out
    try:
        cache.invalidate()
    finally:
        redis_process.resume()
    return connection


def test_an_invalidation_redis_missed_is_done_when_it_is_back(
    emulator: DeskEmulator, redis_process: RedisServer
) -> None:
    connection = invalidated_while_redis_hangs(emulator, redis_process)
    assert not connection.healthy  # the DEL timed out
    admin = redis_process.client()
    assert admin.exists(FRESH_KEY) == 1  # the old list is still there …
    assert connection.status() == "ok"  # … until this process sees Redis again (/healthz's PING)
    assert admin.exists(FRESH_KEY) == 0
    admin.close()
    connection.close()


def test_a_value_stored_after_the_invalidation_is_not_deleted_on_recovery(
    emulator: DeskEmulator, redis_process: RedisServer
) -> None:
    connection = invalidated_while_redis_hangs(emulator, redis_process)
    other = build_desk_client(make_settings(emulator, REDIS_URL=redis_process.url))
    time.sleep(1.05)
    newer = other.get_languages(refresh=True)  # another process stores a list fetched after it
    assert not newer.from_cache
    time.sleep(0.35)
    assert connection.status() == "ok"
    admin = redis_process.client()
    assert admin.exists(FRESH_KEY) == 1
    admin.close()
    connection.close()


def test_a_load_after_invalidate_is_shared_not_repeated(emulator: DeskEmulator, redis_url: str) -> None:
    settings = make_settings(emulator, REDIS_URL=redis_url)
    caches = [shared(redis_url) for _ in range(3)]
    clients = [build_desk_client(settings, cache=cache) for cache in caches]
    clients[0].get_languages()
    caches[0].invalidate()
    emulator.inject(Fault(hang=0.3))
    results: list[LanguageList | DeskError] = []
    threads = [threading.Thread(target=lambda c=c: results.append(c.get_languages())) for c in clients * 5]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 15 and len(emulator.calls) == 2
