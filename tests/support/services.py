"""Real services for tests and benchmarks, on free loopback ports: a `redis-server` to start,
stop, restart or pause. Shared by tests/conftest.py and bench/harness.py."""

from __future__ import annotations

import signal
import socket
import subprocess
import time

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
