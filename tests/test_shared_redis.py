"""Tests of bot/shared: several "processes" sharing one Desk rate limit and one cache in Redis.

Everything is real: a `redis-server` started on a free loopback port (conftest),
the Desk emulator on another, and DeskClients built by the composition root. A "process"
here is a DeskClient with its own RedisConnection, RedisLimiter and RedisCache,
exactly what a separate bot process would have; one test uses real subprocesses.
"""

from __future__ import annotations

import json
import logging
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

from bot.boot import build_desk_client
from bot.config import Settings, load_settings
from bot.desk import DeskClient, DeskError, LanguageList
from bot.desk.sandbox import SANDBOX_SDKAPPID, DeskEmulator, Fault
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


@pytest.fixture
def processes() -> Iterator[Callable[..., Process]]:
    made: list[Process] = []

    def make(settings: Settings, url: str, *, retry_interval: float = 5.0, **cache_options: Any) -> Process:
        connection = RedisConnection(url, retry_interval=retry_interval)
        limiter = RedisLimiter(connection, sdkappid=settings.sdkappid, calls_per_second=settings.rate_limit)
        options = {"ttl": settings.cache_ttl, "stale_max": settings.stale_max, "wait": settings.timeout + 1.5}
        options.update(cache_options)
        cache = RedisCache(connection, sdkappid=settings.sdkappid, **options)
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


@pytest.fixture
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
    time.sleep(0.6)
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
    time.sleep(0.6)
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
