"""Real services for tests and benchmarks, on free loopback ports: a `redis-server` to start,
stop, restart or pause, and a throwaway PostgreSQL. Shared by tests/conftest.py and bench/."""

from __future__ import annotations

import itertools
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import redis

from bot.shared import redis_options


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

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

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


class PostgresUnavailable(RuntimeError):
    """PostgreSQL could not be set up here (no `postgres` user, initdb failed, …): skip, not fail."""


class PostgresServer:
    """A throwaway PostgreSQL server on a free loopback port (`url`: a SQLAlchemy URL, psycopg 3).

    Made with `initdb`/`pg_ctl` (Debian's postgresql package) in a temporary directory, as the
    `postgres` user when running as root (PostgreSQL refuses root); durability off (fsync,
    synchronous commit) since nothing outlives it. `stop()` removes it.
    """

    def __init__(self, initdb: str, pg_ctl: str) -> None:
        self.initdb, self.pg_ctl = initdb, pg_ctl
        self.port = 0
        self.url = ""
        self._base: str | None = None
        self._run_as: list[str] = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def start(self) -> PostgresServer:
        base = self._base = tempfile.mkdtemp(prefix="desk-bot-pg-")  # in /tmp, which postgres can traverse
        data = os.path.join(base, "data")
        try:
            if self._run_as:
                owner = pwd.getpwnam("postgres")
                os.chown(base, owner.pw_uid, owner.pw_gid)
            subprocess.run(
                [*self._run_as, self.initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
                check=True,
                **self._quiet,
            )
            for _ in range(3):  # the free port can be taken before the server binds it
                port = free_port()
                options = (
                    f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={base} "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                )
                log_file = os.path.join(base, "log")
                start = [*self._run_as, self.pg_ctl, "-D", data, "-o", options, "-l", log_file, "-w", "-t", "30",
                         "start"]
                if subprocess.run(start, **self._quiet).returncode == 0:
                    break
            else:
                with open(os.path.join(base, "log"), errors="replace") as log:
                    tail = log.read()[-2000:]
                self._remove()
                raise RuntimeError(f"PostgreSQL did not start: {tail}")
        except (KeyError, OSError, subprocess.SubprocessError) as error:
            self._remove()
            raise PostgresUnavailable(f"{type(error).__name__}: {error}") from error
        self.port = port
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        return self

    def stop(self) -> None:
        if self._base is None:
            return
        data = os.path.join(self._base, "data")
        subprocess.run([*self._run_as, self.pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"], **self._quiet)
        self._remove()

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def _quiet(self) -> dict[str, Any]:
        return {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "timeout": 60}

    def _remove(self) -> None:
        base, self._base = self._base, None
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)


# Ports for servers under test come from below Linux's ephemeral range (32768-60999 by default),
# where outgoing connections take their source ports: a port the kernel handed out for bind(0)
# could be taken by a client's connection (wrk, a test's keep-alive pool) before the server that
# was given it binds, and a readiness probe then finds someone else on it. The range is split
# between pytest-xdist's workers, and each process walks its share from a place of its own.
_PORT_RANGE = (20000, 32768)


def _port_candidates() -> Iterator[int]:
    low, high = _PORT_RANGE
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0) % workers
    share = (high - low) // workers
    start = low + worker * share
    offset = random.Random(os.getpid() ^ time.monotonic_ns()).randrange(share)
    for step in itertools.count():
        yield start + (offset + step) % share


_candidates = _port_candidates()
_candidates_lock = threading.Lock()


def free_port() -> int:
    """A loopback port nothing is bound to now, outside the ephemeral range."""
    with _candidates_lock:
        for _ in range(_PORT_RANGE[1] - _PORT_RANGE[0]):
            port = next(_candidates)
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free loopback port below the ephemeral range")
