"""Tests of bot/shared: several "processes" sharing one Desk rate limit and one cache in Redis.

Everything is real: a `redis-server` started on a free loopback port (conftest),
the Desk emulator on another, and DeskClients built by the composition root. A "process"
here is a DeskClient with its own RedisConnection, RedisLimiter and RedisCache,
exactly what a separate bot process would have; one test uses real subprocesses.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.boot import build_desk_client
from bot.config import Settings, load_settings
from bot.desk import DeskClient, DeskError, Language, LanguageList
from bot.desk.cache import Result
from bot.sandbox.desk_emulator import SANDBOX_SDKAPPID, DeskEmulator, Fault
from bot.shared import (
    RedisCache,
    RedisConnection,
    RedisLimiter,
    connection_for,
    forget_connections,
    redis_options,
    redis_status,
)
from bot.shared.connection import describe_url
from bot.shared.limiter import SCRIPT_PATCHED
from tests.support.concurrency import together
from tests.support.environment import desk_env, make_settings, missing_service, redis_binary
from tests.support.services import RedisServer, free_port
from tests.support.tiers import e2e_fixture

FRESH_KEY = f"desk:cache:{SANDBOX_SDKAPPID}:fresh"
LIMIT_KEY = f"desk:rl:{SANDBOX_SDKAPPID}"
UNAVAILABLE = "is unavailable"
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Process:
    """What one bot process holds: its own connection, limiter, cache and client."""

    connection: RedisConnection
    cache: RedisCache
    client: DeskClient


@e2e_fixture
def processes() -> Iterator[Callable[..., Process]]:
    made: list[Process] = []

    def make(settings: Settings, url: str, *, retry_interval: float = 5.0, **cache_options: Any) -> Process:
        connection = RedisConnection(url, retry_interval=retry_interval)
        app = settings.apps[0]
        limiter = RedisLimiter(connection, sdkappid=app.sdkappid, calls_per_second=app.rate_limit)
        options = {"ttl": app.cache_ttl, "stale_max": app.stale_max, "wait": app.timeout + 1.5}
        options.update(cache_options)
        cache = RedisCache(connection, sdkappid=app.sdkappid, **options)
        made.append(Process(connection, cache, build_desk_client(settings, limiter=limiter, cache=cache)))
        return made[-1]

    yield make
    for process in made:
        process.connection.close()


@pytest.fixture
def two_processes(
    emulator: DeskEmulator, redis_url: str, processes: Callable[..., Process]
) -> tuple[DeskClient, DeskClient]:
    settings = make_settings(emulator)
    return processes(settings, redis_url).client, processes(settings, redis_url).client


@pytest.fixture(autouse=True)
def _no_registered_connections() -> Iterator[None]:
    forget_connections()
    yield
    forget_connections()


def outcomes(emu: DeskEmulator) -> set[int | str]:
    return {call.outcome for call in emu.calls}


def unavailable_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING and UNAVAILABLE in r.getMessage()]


# --- connection options: rediss:// and REDIS_TLS_VERIFY --------------------------------------
def test_plain_url_gets_short_timeouts_and_no_tls_options() -> None:
    options = redis_options("redis://127.0.0.1:6379/0")
    assert options["socket_timeout"] == 0.5
    assert options["socket_connect_timeout"] == 0.5
    assert not any(name.startswith("ssl") for name in options)
    assert options["retry"].get_retries() == 1


def test_rediss_url_verifies_certificates_by_default() -> None:
    assert "ssl_cert_reqs" not in redis_options("rediss://:pw@redis.example:6380", tls_verify=True)


def test_rediss_with_verify_off_accepts_a_self_signed_certificate(redis_url: str) -> None:
    settings = load_settings(
        {
            "DESK_SDKAPPID": "1400000001",
            "DESK_SECRET_KEY": "k" * 20,
            "REDIS_URL": "rediss://:hunter2hunter2@redis.example:6380",
            "REDIS_TLS_VERIFY": "0",
        },
        dotenv_path=None,
    )
    assert redis_options(settings.redis_url.value, tls_verify=settings.redis_tls_verify)["ssl_cert_reqs"] == "none"
    shared = connection_for(settings.redis_url.value, tls_verify=settings.redis_tls_verify)
    connection = shared.client.connection_pool.make_connection()
    assert isinstance(connection, redis.SSLConnection)
    assert connection.cert_reqs == ssl.CERT_NONE
    assert connection.check_hostname is False
    assert connection.socket_timeout == 0.5


def test_log_lines_name_redis_by_host_only() -> None:
    assert describe_url("rediss://user:hunter2hunter2@redis.example:6380/0") == "redis.example:6380 (TLS)"
    assert describe_url("redis://127.0.0.1") == "127.0.0.1:6379"


@e2e_fixture
def tls_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A TLS-only redis-server with a self-signed certificate, as Heroku-style platforms have."""
    if shutil.which("openssl") is None:
        missing_service("openssl (to make a self-signed certificate)")
    key, certificate = tmp_path / "key.pem", tmp_path / "cert.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=redis"]
    subprocess.run([*command, "-keyout", str(key), "-out", str(certificate)], check=True, capture_output=True)
    server = RedisServer(redis_binary(), tls=(str(certificate), str(key))).start()
    yield server
    server.stop()


def test_real_tls_redis_with_a_self_signed_certificate(
    tls_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    assert tls_redis.url.startswith("rediss://")
    accepting = RedisConnection(tls_redis.url, tls_verify=False)
    limiter = RedisLimiter(accepting, sdkappid=SANDBOX_SDKAPPID, calls_per_second=5)
    assert limiter.acquire(timeout=0)
    assert accepting.status() == "ok"
    assert tls_redis.client().zcard(LIMIT_KEY) == 1  # the permit was taken in Redis, over TLS

    verifying = RedisConnection(tls_redis.url, tls_verify=True)
    assert RedisLimiter(verifying, sdkappid=SANDBOX_SDKAPPID, calls_per_second=5).acquire(timeout=0)  # fallback
    assert verifying.status() == "degraded"
    assert "certificate verify failed" in unavailable_warnings(caplog)[0].getMessage()
    accepting.close()
    verifying.close()


# --- the shared rate limit --------------------------------------------------------------------
def test_our_script_counts_every_process_entries() -> None:
    assert SCRIPT_PATCHED


def test_three_processes_together_stay_within_the_rate_limit(
    emulator: DeskEmulator, redis_url: str, processes: Callable[..., Process]
) -> None:
    settings = make_settings(emulator, DESK_TIMEOUT=3)
    clients = [processes(settings, redis_url).client for _ in range(3)]
    started = time.monotonic()
    # fetch() bypasses the cache: every call needs a permit.
    results = together([clients[index % 3].fetch for index in range(15)])
    elapsed = time.monotonic() - started
    assert all(isinstance(result, LanguageList) for result in results), results
    assert len(emulator.calls) == 15
    assert emulator.max_calls_in_window(1.0) <= 5
    assert -14 not in outcomes(emulator)
    assert elapsed >= 2.1  # 15 permits at 5 per 1.1 s: the processes did wait for each other


def test_without_redis_the_same_processes_would_exceed_the_limit(emulator: DeskEmulator) -> None:
    """The control for the test above: in-process limiters alone let 3 x 5 calls through."""
    settings = make_settings(emulator, DESK_TIMEOUT=3)
    clients = [build_desk_client(settings) for _ in range(3)]
    together([clients[index % 3].fetch for index in range(15)])
    assert emulator.max_calls_in_window(1.0) > 5


@pytest.mark.e2e
def test_limiter_falls_back_to_the_same_rate_when_redis_is_down_at_start_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    connection = RedisConnection(f"redis://127.0.0.1:{free_port()}/0")
    limiter = RedisLimiter(connection, sdkappid=SANDBOX_SDKAPPID, calls_per_second=5)
    granted = [limiter.acquire(timeout=0) for _ in range(6)]
    assert granted == [True] * 5 + [False]
    assert connection.status() == "degraded"
    assert len(unavailable_warnings(caplog)) == 1


# --- the shared cache -------------------------------------------------------------------------
def test_cold_burst_across_three_processes_makes_one_upstream_call(
    emulator: DeskEmulator, redis_url: str, processes: Callable[..., Process]
) -> None:
    settings = make_settings(emulator)
    clients = [processes(settings, redis_url).client for _ in range(3)]
    results = together([clients[index % 3].get_languages for index in range(60)])
    assert len(emulator.calls) == 1
    assert all(isinstance(result, LanguageList) and not result.stale for result in results), results
    assert len({result.fingerprint for result in results}) == 1


def test_fifty_threads_in_one_process_make_one_lock_attempt(
    emulator: DeskEmulator, redis_url: str, processes: Callable[..., Process]
) -> None:
    client = processes(make_settings(emulator), redis_url).client
    admin = redis.Redis.from_url(redis_url)
    admin.config_resetstat()
    together([client.get_languages] * 50)
    stats = admin.info("commandstats")
    # Commands inside scripts count too: the store script does SET fresh, SET good, GET lock.
    assert stats["cmdstat_set"]["calls"] == 1 + 2  # one SET NX PX of the lock
    assert stats["cmdstat_get"]["calls"] == 2 + 1  # one look before taking the lock, one after
    assert len(emulator.calls) == 1
    admin.close()


def test_refresh_storm_across_three_processes_stays_within_the_limit(
    emulator: DeskEmulator, redis_url: str, processes: Callable[..., Process]
) -> None:
    settings = make_settings(emulator)
    clients = [processes(settings, redis_url).client for _ in range(3)]
    until = time.monotonic() + 3.0
    answers: list[Any] = []

    def storm(client: DeskClient) -> Callable[[], None]:
        def run() -> None:
            while time.monotonic() < until:
                try:
                    answers.append(client.get_languages(refresh=True))
                except DeskError as error:
                    answers.append(error)

        return run

    together([storm(clients[index % 3]) for index in range(15)])
    assert answers and all(isinstance(a, LanguageList) and not a.stale for a in answers), answers[:3]
    assert emulator.max_calls_in_window(1.0) <= 5
    assert -14 not in outcomes(emulator)
    # A refresh accepts a list fetched within the last second: about one call per second.
    assert len(emulator.calls) <= 5


def test_a_refresh_in_one_process_is_seen_by_the_others(
    emulator: DeskEmulator, two_processes: tuple[DeskClient, DeskClient]
) -> None:
    first, second = two_processes
    original = first.get_languages()
    assert second.get_languages().from_cache and len(emulator.calls) == 1
    emulator.set_languages([("en", 1), ("de", 0)])
    time.sleep(1.1)  # a refresh accepts a list fetched less than a second ago
    refreshed = second.get_languages(refresh=True)
    assert refreshed.fingerprint == (("en", True), ("de", False)) != original.fingerprint
    assert len(emulator.calls) == 2
    assert first.get_languages().fingerprint == refreshed.fingerprint
    assert len(emulator.calls) == 2


def test_a_refresh_joins_a_load_in_flight_in_another_process(
    emulator: DeskEmulator, two_processes: tuple[DeskClient, DeskClient]
) -> None:
    first, second = two_processes
    emulator.inject(Fault(hang=0.6))
    loading = threading.Thread(target=first.get_languages)
    loading.start()
    time.sleep(0.2)
    joined = second.get_languages(refresh=True)
    loading.join()
    assert not joined.stale
    assert len(emulator.calls) == 1


def test_an_error_is_cached_briefly_for_all_processes_refreshes_included(
    emulator: DeskEmulator, redis_url: str, processes: Callable[..., Process]
) -> None:
    settings = make_settings(emulator)
    first, second = (processes(settings, redis_url, error_ttl=1.0).client for _ in range(2))
    emulator.inject(Fault(code=60006), times=-1)  # permanent: the client does not retry it
    with pytest.raises(DeskError) as failed:
        first.get_languages()
    assert failed.value.code == 60006
    with pytest.raises(DeskError) as shared:
        second.get_languages()
    assert shared.value.code == 60006 and len(emulator.calls) == 1  # the negative cache, shared
    with pytest.raises(DeskError):
        second.get_languages(refresh=True)  # an outage is not hammered by refreshes either
    assert len(emulator.calls) == 1
    emulator.clear_faults()
    time.sleep(1.1)  # past error_ttl
    assert not first.get_languages().stale
    assert len(emulator.calls) == 2


def test_the_last_good_list_is_shared_for_stale_if_error(
    emulator: DeskEmulator, two_processes: tuple[DeskClient, DeskClient]
) -> None:
    first, second = two_processes
    good = first.get_languages()
    emulator.inject(Fault(code=60006), times=-1)
    time.sleep(1.1)
    stale = second.get_languages(refresh=True)  # `second` never loaded a list itself
    assert stale.stale and stale.error is not None and stale.error.code == 60006
    assert stale.fingerprint == good.fingerprint


def test_waiting_for_a_hung_process_is_bounded(
    emulator: DeskEmulator, redis_url: str, processes: Callable[..., Process]
) -> None:
    settings = make_settings(emulator)
    first = processes(settings, redis_url).client
    impatient = processes(settings, redis_url, wait=0.3).client
    emulator.inject(Fault(hang=0.9))
    loading = threading.Thread(target=first.get_languages)
    loading.start()
    time.sleep(0.1)
    started = time.monotonic()
    with pytest.raises(DeskError) as waited:
        impatient.get_languages()
    assert waited.value.code == "read-timeout" and "another bot process" in str(waited.value)
    assert time.monotonic() - started < 0.6
    loading.join()
    assert len(emulator.calls) == 1


def test_peek_answers_from_what_the_process_has_seen(
    emulator: DeskEmulator, two_processes: tuple[DeskClient, DeskClient]
) -> None:
    first, second = two_processes
    assert first.peek() is None
    first.get_languages()
    assert first.peek() is not None
    assert second.peek() is None  # peek never does I/O: `second` has not looked yet
    second.get_languages()
    assert second.peek() is not None


# --- values read back from Redis are untrusted --------------------------------------------------
GOOD_KEY = f"desk:cache:{SANDBOX_SDKAPPID}:good"
TTL = 300.0


@dataclass
class Probe:
    """One real RedisCache, the Redis it uses, and a loader that counts its calls."""

    cache: RedisCache
    admin: redis.Redis
    loads: list[LanguageList]

    def load(self) -> LanguageList:
        self.loads.append(LanguageList.build([Language.of("fr", True)], time.time(), request_id="loaded"))
        return self.loads[-1]

    def get_with(self, raw: bytes) -> Result:
        """`cache.get(load)` with `raw` written straight into the `fresh` key, as anyone could."""
        self.admin.set(FRESH_KEY, raw)
        self.loads.clear()
        return self.cache.get(self.load)


@pytest.fixture
def probe(emulator: DeskEmulator, redis_url: str, processes: Callable[..., Process]) -> Iterator[Probe]:
    process = processes(make_settings(emulator, DESK_CACHE_TTL=TTL), redis_url)
    admin = redis.Redis.from_url(redis_url)
    yield Probe(process.cache, admin, [])
    admin.close()


def a_miss(probe: Probe, result: Result) -> bool:
    """Whether `result` came from calling the loader (once), which is what a miss does."""
    return len(probe.loads) == 1 and result is probe.loads[0]


def not_a_number(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, int | float)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=30,
)
PAIR = st.tuples(st.text(max_size=12), st.booleans()).map(list)


def a_pair(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], bool)


BAD_PAIR = JSONISH.filter(lambda v: not a_pair(v))
TEXT_OR_NONE = st.none() | st.text(max_size=10)
NOT_TEXT = st.integers() | st.floats() | st.booleans() | st.lists(st.none(), max_size=2)


@dataclass(frozen=True)
class Ago:
    """A time relative to when the entry is written (a strategy must not read the clock)."""

    seconds: float


def written_now(value: Any) -> Any:
    now = time.time()
    if isinstance(value, Ago):
        return now - value.seconds
    if isinstance(value, dict):
        return {key: written_now(item) for key, item in value.items()}
    return value


@st.composite
def near_entries(draw: st.DrawFn) -> tuple[dict[str, Any], bool]:
    """An entry shaped like what the cache writes, each field right or wrong: (entry, is it valid)."""
    right: list[bool] = []

    def field(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> Any:
        right.append(draw(st.booleans()))
        return draw(good if right[-1] else bad)

    stamp_good = st.floats(-1, TTL / 2).map(Ago)
    stamp_bad = (
        st.sampled_from([math.inf, -math.inf, math.nan, 1e308, Ago(-3600), Ago(TTL + 60)])
        | st.floats(-1e9, -60).map(Ago)
        | JSONISH.filter(not_a_number)
    )
    if draw(st.booleans()):
        bad_languages = JSONISH.filter(lambda v: not isinstance(v, list)) | st.tuples(
            st.lists(PAIR, max_size=3), BAD_PAIR
        ).map(lambda t: [*t[0], t[1]])
        entry: dict[str, Any] = {
            "languages": field(st.lists(PAIR, max_size=4), bad_languages),
            "fetched_at": field(stamp_good, stamp_bad),
            "request_id": field(TEXT_OR_NONE, NOT_TEXT),
        }
    else:
        codes = st.sampled_from([60006, -14, 70001, 123456, "read-timeout", "bad-response"])
        entry = {
            "error": {
                "code": field(codes, st.sampled_from([True, False, "no-such-code", 2**40, 1.5, None, [60006]])),
                "error_info": field(TEXT_OR_NONE, NOT_TEXT),
                "request_id": field(TEXT_OR_NONE, NOT_TEXT),
                "detail": field(TEXT_OR_NONE, NOT_TEXT),
            },
            "at": field(stamp_good, stamp_bad),
        }
    if draw(st.integers(0, 5)) == 0:  # a field the cache always writes is missing
        required = sorted({"languages", "fetched_at", "error", "at"} & set(entry))
        del entry[draw(st.sampled_from(required))]
        right.append(False)
    if draw(st.integers(0, 5)) == 0:  # a field it does not write (a newer version's) is ignored...
        key = draw(st.text(max_size=8).filter(lambda k: k not in entry))
        entry[key] = draw(JSONISH)
        right.append(key != "error")  # ...unless it makes a list look like an error
    return entry, all(right)


UNTRUSTED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@UNTRUSTED
@given(
    raw=st.binary(max_size=400)
    | st.text(max_size=200).map(str.encode)
    | st.builds(lambda n, opening: opening * n, st.integers(500, 50000), st.sampled_from([b"[", b'{"a":', b"[{}, "]))
)
def test_any_bytes_in_redis_are_a_miss_never_an_exception(probe: Probe, raw: bytes) -> None:
    assert a_miss(probe, probe.get_with(raw))


@UNTRUSTED
@given(value=JSONISH)
def test_any_json_in_redis_is_a_miss_never_an_exception(probe: Probe, value: Any) -> None:
    assert a_miss(probe, probe.get_with(json.dumps(value).encode()))


@UNTRUSTED
@given(entry=near_entries())
def test_an_entry_is_used_only_when_it_is_exactly_what_the_cache_writes(
    probe: Probe, entry: tuple[dict[str, Any], bool]
) -> None:
    value, valid = written_now(entry[0]), entry[1]
    result = probe.get_with(json.dumps(value).encode())
    if not valid:
        assert a_miss(probe, result), value
    elif "languages" in value:
        assert probe.loads == [] and isinstance(result, LanguageList), value
        assert result.fetched_at == value["fetched_at"]
        assert [[lang.tag, lang.is_default] for lang in result.languages] == value["languages"]
    else:
        assert probe.loads == [] and isinstance(result, DeskError), value
        assert result.code == value["error"]["code"]


def test_what_the_cache_writes_it_reads_back(probe: Probe) -> None:
    """The control for the tests above: a value stored by the cache itself is a hit."""
    stored = probe.cache.get(probe.load)
    assert probe.loads == [stored]
    probe.loads.clear()
    again = probe.cache.get(probe.load)
    assert probe.loads == [] and again.fingerprint == stored.fingerprint and again.fetched_at == stored.fetched_at


@pytest.mark.parametrize(
    "fetched_at", ["Infinity", "-Infinity", "NaN", "1e308", "1e400", "true", '"now"', "FUTURE", "OLD", "9" * 400]
)
def test_a_fetched_at_that_is_not_finite_or_in_the_future_is_a_miss(probe: Probe, fetched_at: str) -> None:
    now = time.time()
    stamp = {"FUTURE": repr(now + 3600), "OLD": repr(now - 2 * 86400)}.get(fetched_at, fetched_at)
    raw = '{"languages": [["en", true]], "fetched_at": ' + stamp + ', "request_id": null}'
    assert a_miss(probe, probe.get_with(raw.encode()))
    assert probe.cache.peek() is probe.loads[0]  # not a list that would be fresh forever
    probe.admin.set(GOOD_KEY, raw)
    assert probe.cache.last_good() is probe.loads[0]  # nor the last good list


def test_a_fetched_at_a_little_ahead_is_clock_skew_and_is_used(probe: Probe) -> None:
    entry = {"languages": [["en", True], ["de", False]], "fetched_at": time.time() + 3, "request_id": None}
    result = probe.get_with(json.dumps(entry).encode())
    assert probe.loads == [] and isinstance(result, LanguageList)
    assert result.fingerprint == (("en", True), ("de", False))


def test_a_deeply_nested_value_is_a_miss_not_a_recursion_error(
    emulator: DeskEmulator, redis_url: str, probe: Probe
) -> None:
    poison = b"[" * 100000
    probe.admin.set(GOOD_KEY, poison)
    assert a_miss(probe, probe.get_with(poison))
    assert probe.cache.last_good() is probe.loads[0]
    # And a whole client sharing that Redis answers every request from Desk.
    probe.admin.set(FRESH_KEY, poison)
    probe.admin.set(GOOD_KEY, poison)
    client = build_desk_client(make_settings(emulator, REDIS_URL=redis_url))
    assert not client.get_languages().stale
    assert len(emulator.calls) == 1


# --- Redis trouble ----------------------------------------------------------------------------
def test_redis_stopped_mid_run_falls_back_then_recovers(
    emulator: DeskEmulator,
    redis_process: RedisServer,
    processes: Callable[..., Process],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bot.shared")
    settings = make_settings(emulator)
    pair = [processes(settings, redis_process.url, retry_interval=0.5) for _ in range(2)]
    for process in pair:
        assert not process.client.get_languages().stale
    assert len(emulator.calls) == 1

    redis_process.stop()
    time.sleep(1.2)  # the lost Redis held the last second's permits: let them age out, as in a real outage
    for _ in range(10):
        for process in pair:
            assert process.client.get_languages().fingerprint  # every call still answered
    for process in pair:
        process.client.fetch()  # and the limiter still grants permits
    assert [process.connection.status() for process in pair] == ["degraded", "degraded"]
    assert len(unavailable_warnings(caplog)) == 2  # one per process, however many calls failed

    redis_process.start()  # empty, like a Redis that lost its data: no script, no keys
    time.sleep(1.1)  # /healthz's PING answer stands for a second (HEALTH_PROBE_INTERVAL)
    assert [process.connection.status() for process in pair] == ["ok", "ok"]
    assert any("reachable again" in record.getMessage() for record in caplog.records)
    emulator.reset_calls()
    results = together([pair[index % 2].client.get_languages for index in range(20)])
    assert all(isinstance(result, LanguageList) for result in results)
    assert len(emulator.calls) <= 1  # shared again: one call for both (none if the local lists were fresh)
    assert -14 not in outcomes(emulator)  # the permits taken alone during the outage were shared on return
    # Permits come from Redis again (its script reloaded), and the two permits each process
    # took alone during the outage were added to the shared log when it saw Redis back.
    admin = redis_process.client()
    members = admin.zrange(LIMIT_KEY, 0, -1)
    assert len(members) == 4 + 1 and sum(member.startswith(b"local:") for member in members) == 4
    admin.close()
    emulator.set_languages([("en", 1), ("fr", 0)])
    time.sleep(1.1)
    pair[0].client.get_languages(refresh=True)
    assert pair[1].client.get_languages().fingerprint == (("en", True), ("fr", False))
    assert len(unavailable_warnings(caplog)) == 2


def test_a_slow_redis_does_not_hold_replies(
    emulator: DeskEmulator,
    redis_process: RedisServer,
    processes: Callable[..., Process],
    caplog: pytest.LogCaptureFixture,
) -> None:
    process = processes(make_settings(emulator), redis_process.url, retry_interval=0.5)
    process.client.get_languages()
    redis_process.pause()  # accepts connections, never answers
    try:
        started = time.monotonic()
        assert process.client.get_languages().fingerprint
        assert time.monotonic() - started < 1.5  # one 0.5 s socket timeout, then the fallback
        started = time.monotonic()
        for _ in range(5):
            process.client.get_languages()
        assert time.monotonic() - started < 0.5  # Redis is not tried again for a while
        assert process.connection.status() == "degraded"
        assert len(unavailable_warnings(caplog)) == 1
    finally:
        redis_process.resume()
    time.sleep(1.1)  # the PING that found it paused stands for a second (HEALTH_PROBE_INTERVAL)
    assert process.connection.status() == "ok"


def test_redis_down_at_start_up_costs_nothing_but_sharing(
    emulator: DeskEmulator, processes: Callable[..., Process], caplog: pytest.LogCaptureFixture
) -> None:
    process = processes(make_settings(emulator), f"redis://127.0.0.1:{free_port()}/0")
    assert not process.client.get_languages().stale
    assert process.client.get_languages().from_cache
    assert len(emulator.calls) == 1
    started = time.monotonic()
    assert process.connection.status() == "degraded"
    assert time.monotonic() - started < 0.3
    assert len(unavailable_warnings(caplog)) == 1


def test_the_redis_password_is_never_logged(
    emulator: DeskEmulator, redis_process: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin = redis_process.client()
    admin.config_set("requirepass", "the-right-password-123")
    wrong = f"redis://:wrong-password-456@127.0.0.1:{redis_process.port}/0"
    closed = f"redis://user:closed-port-pass-789@127.0.0.1:{free_port()}/0"
    for url in (wrong, closed):
        settings = make_settings(emulator, REDIS_URL=url)
        client = build_desk_client(settings)
        assert client.get_languages().fingerprint
        assert redis_status() == client.shared_state_health() == "degraded"
        forget_connections()
    assert len(unavailable_warnings(caplog)) == 2
    for password in ("wrong-password-456", "closed-port-pass-789", "the-right-password-123"):
        assert password not in caplog.text
    admin.close()


# --- wiring and health --------------------------------------------------------------------------
def test_composition_root_shares_state_through_redis_with_redis_url(emulator: DeskEmulator, redis_url: str) -> None:
    assert redis_status() is None
    settings = make_settings(emulator, REDIS_URL=redis_url)
    first, second = build_desk_client(settings), build_desk_client(settings)
    first.get_languages()
    assert second.get_languages().from_cache
    assert len(emulator.calls) == 1
    admin = redis.Redis.from_url(redis_url)
    assert admin.exists(FRESH_KEY, LIMIT_KEY) == 2
    assert redis_status() == "ok"
    assert first.shared_state_health() == "ok"  # what /healthz reports as "redis"
    admin.close()


def test_composition_root_without_redis_url_is_unchanged(emulator: DeskEmulator, redis_url: str) -> None:
    client = build_desk_client(make_settings(emulator))
    client.get_languages()
    admin = redis.Redis.from_url(redis_url)
    assert admin.dbsize() == 0
    assert redis_status() is None
    assert client.shared_state_health() is None
    admin.close()


# --- real processes -----------------------------------------------------------------------------
def test_real_processes_share_one_call_and_one_rate_limit(emulator: DeskEmulator, redis_url: str) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DESK_", "REDIS_"))}
    env.update(desk_env(emulator, REDIS_URL=redis_url))
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.support.redis_worker"],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:

        def phase(command: str) -> list[dict[str, int]]:
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write(command + "\n")
                worker.stdin.flush()
            return [json.loads(read_line(worker)) for worker in workers]

        assert [read_line(worker).strip() for worker in workers] == ["ready"] * 3
        burst = phase("burst 10")
        assert burst == [{"ok": 10}] * 3
        assert len(emulator.calls) == 1  # 30 cold calls in 3 processes: one upstream call

        time.sleep(1.0)
        storm = phase("storm 4 2.5")
        assert all(set(tally) == {"ok"} for tally in storm), storm  # no error, no stale answer
        assert emulator.max_calls_in_window(1.0) <= 5
        assert -14 not in outcomes(emulator)
    finally:
        for worker in workers:
            if worker.stdin:
                worker.stdin.close()
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


def read_line(worker: subprocess.Popen[str]) -> str:
    assert worker.stdout is not None
    line = worker.stdout.readline()
    assert line, f"worker exited with {worker.poll()}"
    return line
