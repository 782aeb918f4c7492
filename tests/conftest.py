"""Shared fixtures: the Desk emulator, settings pointing at it, and a client built from them.

Everything runs over real loopback sockets. Service fixtures (Redis, PostgreSQL)
start real servers on free ports; under CI=true a missing server fails the run.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from bot.config import Settings, load_settings
from bot.desk import DeskClient, build_desk_client
from bot.desk.sandbox import SANDBOX_KEY, SANDBOX_SDKAPPID, DeskEmulator
from bot.shared import redis_options

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing_service(what: str) -> None:
    """Skip locally, fail in CI: CI must run every test."""
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true (.ci/run installs it)")
    pytest.skip(f"{what} is not available")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read the developer's real credentials."""
    for name in list(os.environ):
        if name.startswith(("DESK_", "SLACK_", "DIGEST_", "REDIS_", "DATABASE_")):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def emulator() -> Iterator[DeskEmulator]:
    with DeskEmulator() as emu:
        yield emu


def desk_env(emu: DeskEmulator, **extra: Any) -> dict[str, str]:
    env = {
        "DESK_SDKAPPID": str(SANDBOX_SDKAPPID),
        "DESK_SECRET_KEY": SANDBOX_KEY,
        "DESK_API_URL": emu.base_url,
        "DESK_TIMEOUT": "1.0",
    }
    env.update({key: str(value) for key, value in extra.items()})
    return env


def make_settings(emu: DeskEmulator, **extra: Any) -> Settings:
    return load_settings(desk_env(emu, **extra), dotenv_path=None)


@pytest.fixture
def settings(emulator: DeskEmulator) -> Settings:
    return make_settings(emulator)


@pytest.fixture
def client(settings: Settings) -> DeskClient:
    return build_desk_client(settings)


# --- Redis (tests of bot/shared) ---------------------------------------------------------------
class RedisServer:
    """A real `redis-server` on a free loopback port, without persistence, that a test can
    stop, restart (same port) or pause (SIGSTOP: a Redis that accepts but never answers).
    With `tls=(certificate file, key file)` it speaks only TLS (a `rediss://` URL)."""

    def __init__(self, binary: str, *, tls: tuple[str, str] | None = None) -> None:
        self.binary = binary
        self.port = free_port()
        self.tls = tls
        self.url = f"{'rediss' if tls else 'redis'}://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        if self.tls:
            command[1:3] = ["--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "no"]
            command += ["--tls-cert-file", self.tls[0], "--tls-key-file", self.tls[1]]
        self._process = subprocess.Popen(
            [*command, "--loglevel", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._process.returncode}")
            try:
                with self.client(socket_timeout=0.2) as probe:
                    if probe.ping():
                        return self
            except redis.RedisError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start within 10 s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.send_signal(signal.SIGCONT)  # a paused server cannot handle SIGTERM
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> RedisServer:
        self.stop()
        return self.start()

    def client(self, socket_timeout: float = 2.0) -> redis.Redis:
        options = redis_options(self.url, tls_verify=False, socket_timeout=socket_timeout)
        return redis.Redis.from_url(self.url, **options)

    def flushall(self) -> None:
        with self.client() as client:
            client.flushall()

    def pause(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        missing_service("redis-server (apt-get install redis-server)")
    assert binary is not None
    return binary


@pytest.fixture(scope="session")
def redis_session() -> Iterator[RedisServer]:
    server = RedisServer(redis_binary()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(redis_session: RedisServer) -> str:
    """The URL of a redis-server shared by the whole session (`redis_url` for an emptied one)."""
    return redis_session.url


@pytest.fixture
def redis_url(redis_session: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    redis_session.flushall()
    return redis_session.url


@pytest.fixture
def redis_process() -> Iterator[RedisServer]:
    """A redis-server of this test's own, to stop, restart or pause mid-test."""
    server = RedisServer(redis_binary()).start()
    yield server
    server.stop()

