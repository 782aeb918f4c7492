"""Real services for tests and benchmarks, on free loopback ports: a `redis-server` to start,
stop, restart or pause, and a throwaway PostgreSQL. Shared by tests/conftest.py and bench/."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServiceUnavailable(RuntimeError):
    """A service could not be started here (not installed, or refused to start)."""


class PostgresServer:
    """A throwaway PostgreSQL server on a free loopback port (`url`: SQLAlchemy, psycopg 3).

    Started with `initdb`/`pg_ctl` in a temporary directory, as the `postgres` user when running as
    root (PostgreSQL refuses root), without durability (fsync off); stopped and removed by `stop()`.
    """

    def __init__(self, initdb: str, pg_ctl: str) -> None:
        self.initdb, self.pg_ctl = initdb, pg_ctl
        self.url = ""
        self._as_root = os.geteuid() == 0
        self._run_as: list[str] = ["runuser", "-u", "postgres", "--"] if self._as_root else []
        self._base = ""
        self._quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "timeout": 60}

    def start(self) -> PostgresServer:
        self._base = tempfile.mkdtemp(prefix="desk-bot-pg-")  # in /tmp, which the postgres user can traverse
        data = os.path.join(self._base, "data")
        try:
            if self._as_root:
                owner = pwd.getpwnam("postgres")
                os.chown(self._base, owner.pw_uid, owner.pw_gid)
            subprocess.run(
                [*self._run_as, self.initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
                check=True,
                **self._quiet,
            )
            for _ in range(3):  # the free port can be taken before the server binds it
                port = free_port()
                options = (
                    f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self._base} "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                )
                log_file = os.path.join(self._base, "log")
                start = [*self._run_as, self.pg_ctl, "-D", data, "-o", options, "-l", log_file, "-w", "-t", "30",
                         "start"]
                if subprocess.run(start, **self._quiet).returncode == 0:
                    break
            else:
                with open(os.path.join(self._base, "log"), errors="replace") as log:
                    raise RuntimeError(f"PostgreSQL did not start: {log.read()[-2000:]}")
        except (KeyError, OSError, subprocess.SubprocessError) as error:
            shutil.rmtree(self._base, ignore_errors=True)
            raise ServiceUnavailable(f"PostgreSQL ({type(error).__name__}: {error})") from None
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        return self

    def stop(self) -> None:
        if not self._base:
            return
        data = os.path.join(self._base, "data")
        subprocess.run([*self._run_as, self.pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"], **self._quiet)
        shutil.rmtree(self._base, ignore_errors=True)
        self._base = ""

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
