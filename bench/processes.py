"""The processes a benchmark runs and drives: the Desk emulator, the servers under test, FakeSlack.

- `EmulatorProcess`: the Desk emulator as its own process (`python -m bot sandbox`),
  driven through its HTTP control API (faults, recorded calls, the console's languages).
- `ServerProcess`: a server as its own process group, by default the bot itself under its
  own server (`python -m bot serve`, granian); `servers()` boots several side by side;
  `reference_command()` serves one of bench/baselines.py's apps (or the bot's WSGI app)
  under granian or gunicorn; `bot_environment()` points them at the emulator and at a
  `FakeSlack` (`fake_slack()`) running in the benchmark's process.
- `memory_kb()`, `tracebacks()`, `workspace()`: what a benchmark reads of a process (its
  memory, its log) and the temporary directory its servers run in.

The load sent to these processes is bench/load.py's; the figures, bench/figures.py's.
Everything listens and connects on 127.0.0.1 only (HOST).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bench import REPO
from bot.sandbox.desk_emulator import SANDBOX_KEY, SANDBOX_SDKAPPID, sandbox_identity
from bot.sandbox.slack_emulator import FakeSlack
from tests.support.services import free_port
from tests.support.socket_mode_server import SocketModeFakeSlack

HOST = "127.0.0.1"
SIGNING_SECRET = "bench-signing-secret-not-a-real-one"  # made up: the servers under test only see loopback
# Variables of the developer's own environment that must not leak into a server under test.
_OWN_PREFIXES = ("DESK_", "SLACK_", "DIGEST_", "REDIS_", "DATABASE_", "WEB_", "PORT", "LOG_LEVEL", "HOST")
SERVERS = ("granian", "gunicorn")

# --- HTTP to a process -------------------------------------------------------------------------


def http_json(port: int, method: str, path: str, payload: Any = None, timeout: float = 5.0) -> tuple[int, Any]:
    """One request to 127.0.0.1:`port`; the status and the decoded JSON answer (None if not JSON)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        body = None if payload is None else json.dumps(payload)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    try:
        return response.status, json.loads(raw) if raw else None
    except ValueError:
        return response.status, None


# --- the Desk emulator, in its own process -----------------------------------------------------


class EmulatorProcess:
    """`python -m bot sandbox` on a free port, with its control API wrapped; `sample` and
    `sdkappid` make it another app (a second one beside the first)."""

    def __init__(self, app_index: int = 0, sample: str | None = None, admins: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.admins = tuple(admins)  # Desk admin identifiers accepted besides `administrator`
        self.base_url = f"http://{HOST}:{self.port}"
        self.app_index = app_index  # the N-th emulated app: its own SDKAppID and key (sandbox_identity)
        self.sample = sample  # the starting data; None: the app's own (sample_for_app)
        self.sdkappid, self.key = sandbox_identity(app_index)
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> EmulatorProcess:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bot", "sandbox", "--port", str(self.port), "--host", HOST,
             "--app-index", str(self.app_index), *(["--sample", self.sample] if self.sample else []),
             *(arg for admin in self.admins for arg in ("--admin", admin))],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_child_environment(),
            cwd=tempfile.gettempdir(),
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()  # "... listening on http://127.0.0.1:PORT"
        if not line.strip().endswith(self.base_url):
            self.stop()
            raise RuntimeError(f"the Desk emulator did not start: {line.strip()!r}")
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            _end(process, timeout=5)

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def inject(self, times: int = 1, **fault: Any) -> None:
        """Queue a fault (code=, hang=, http_status=, truncated=) for the next `times` Desk calls."""
        status, answer = http_json(self.port, "POST", "/_emulator/faults", {**fault, "times": times})
        if status != 200:
            raise RuntimeError(f"the emulator refused the fault {fault}: {answer}")

    def clear_faults(self) -> None:
        http_json(self.port, "DELETE", "/_emulator/faults")

    def languages(self) -> list[tuple[str, int]]:
        """The languages now, as `(tag, is_default)` pairs: what the console would show."""
        status, answer = http_json(self.port, "GET", "/_emulator/languages")
        if status != 200 or not isinstance(answer, list):
            raise RuntimeError("the emulator did not list its languages")
        return [(str(tag), int(default)) for tag, default in answer]

    def set_languages(self, pairs: Sequence[tuple[str, int]]) -> None:
        """Change the list directly, as someone in the Tencent console would."""
        status, answer = http_json(self.port, "PUT", "/_emulator/languages", [list(p) for p in pairs])
        if status != 200:
            raise RuntimeError(f"the emulator refused the languages {pairs}: {answer}")

    def set_faq(self, tag: str, questions: Sequence[dict[str, Any]]) -> None:
        status, answer = http_json(self.port, "PUT", "/_emulator/faq", {"LanguageTag": tag, "Questions": questions})
        if status != 200:
            raise RuntimeError(f"the emulator refused the FAQ of {tag!r}: {answer}")

    def calls(self) -> list[dict[str, Any]]:
        """Every Desk call so far: {"at": wall-clock arrival, "outcome": code or "hang"/"http-502"/…,
        "api": the API's command, "body": the JSON body sent, "identifier": the Desk admin it came as}."""
        status, answer = http_json(self.port, "GET", "/_emulator/calls")
        if status != 200 or not isinstance(answer, list):
            raise RuntimeError("the emulator did not list its calls")
        return answer

    def reset_calls(self) -> None:
        http_json(self.port, "DELETE", "/_emulator/calls")


# --- servers under test, each its own process --------------------------------------------------


def _child_environment() -> dict[str, str]:
    """This environment minus the bot's own variables, with the repository importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_PREFIXES)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def bot_environment(
    emulator: EmulatorProcess, fake: FakeSlack, workdir: Path, **settings: str | int | float
) -> dict[str, str]:
    """The variables `python -m bot serve` needs, pointing at the emulator and at `fake`.

    `settings` adds or overrides variables (DESK_TIMEOUT="2", WEB_CONCURRENCY=3, …).
    """
    env = _child_environment()
    env.update(
        {
            "DESK_SDKAPPID": str(SANDBOX_SDKAPPID),
            "DESK_SECRET_KEY": SANDBOX_KEY,
            "DESK_API_URL": emulator.base_url,
            "SLACK_API_URL": fake.api_url,
            "SLACK_BOT_TOKEN": fake.token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "DATABASE_URL": f"sqlite:///{workdir / 'digests.db'}",
            "DIGEST_TICKER": "0",
            "LOG_LEVEL": "INFO",
            "WEB_CONCURRENCY": "1",
            "HOST": HOST,  # every server under test listens on loopback only
        }
    )
    env.update({key: str(value) for key, value in settings.items()})
    return env


def reference_command(app: str, server: str = "granian") -> list[str]:
    """The command serving `app` under `server`: `bot` under granian is the bot's own `python -m
    bot serve`; anything else is bench/baselines.py (`bot` there is `bot.wsgi:application`)."""
    if server not in SERVERS:
        raise ValueError(f"no server {server!r}: one of {SERVERS}")
    if app == "bot" and server == "granian":
        return [sys.executable, "-m", "bot", "serve"]
    return [sys.executable, "-m", "bench.baselines", app, "--server", server]


# The keep-alive connections of load clients, by server port: closed when that server stops or is
# killed (a graceful stop waits for open connections; a killed server's are dead).
_connections_to: dict[int, list[Callable[[], None]]] = {}
_connections_lock = threading.Lock()


def close_with_server(port: int, close: Callable[[], None]) -> None:
    """Have `close` called whenever the server on `port` stops or is killed."""
    with _connections_lock:
        _connections_to.setdefault(port, []).append(close)


class ServerProcess:
    """A server (granian or gunicorn: a master and its workers) in its own process group,
    its output in a log file.

    `command` defaults to the bot (`python -m bot serve`); see `reference_command()`.
    """

    def __init__(self, env: dict[str, str], workdir: Path, command: Sequence[str] | None = None) -> None:
        self.port = free_port()
        self.env = {**env, "PORT": str(self.port)}
        # gunicorn's control socket lives under $XDG_RUNTIME_DIR: one per server, so several can run.
        runtime = workdir / f"run-{self.port}"
        runtime.mkdir(parents=True, exist_ok=True)
        self.env["XDG_RUNTIME_DIR"] = str(runtime)
        self.workdir = workdir
        self.command = list(command or [sys.executable, "-m", "bot", "serve"])
        self.log_path = workdir / f"server-{self.port}.log"
        self.started_at = 0.0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self, ready_timeout: float = 30.0) -> float:
        """Start the server and wait for /healthz (or any answer on the port); the seconds it took."""
        self.launch()
        return self.wait_ready(ready_timeout)

    def launch(self) -> None:
        """Start the process without waiting for it (several servers then boot side by side)."""
        with self.log_path.open("ab") as log:  # a restarted server (kill()) goes on in the same log
            self.started_at = time.monotonic()
            self._process = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=self.workdir,  # no stray .env is read from the repository
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, ready_timeout: float = 30.0) -> float:
        assert self._process is not None, "launch() first"
        deadline = self.started_at + ready_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the server exited with {self._process.returncode}:\n{self.log_tail()}")
            try:
                status, _ = http_json(self.port, "GET", "/healthz", timeout=1.0)
            except OSError:
                time.sleep(0.005)
                continue
            if status in (200, 404):  # the references have no /healthz; any answer means ready
                return time.monotonic() - self.started_at
            time.sleep(0.005)
        self.stop()
        raise RuntimeError(f"the server did not answer within {ready_timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        with _connections_lock:
            closers = _connections_to.pop(self.port, [])
        for close in closers:
            close()
        process, self._process = self._process, None
        if process is not None:
            _end(process, timeout=15, group=True)

    def kill(self) -> None:
        """SIGKILL the server and its workers at once (a crash: no graceful stop); `start()` again
        brings it back on the same port."""
        with _connections_lock:
            closers = list(_connections_to.get(self.port, []))
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for close in closers:  # their keep-alive connections are dead; the clients stay usable
            close()

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def worker_pids(self) -> list[int]:
        """The workers (granian's or gunicorn's): the master's children."""
        try:
            children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        except OSError:
            return []
        return [int(pid) for pid in children]


def release_phase(env: dict[str, str], workdir: Path) -> None:
    """`python -m bot migrate` with the servers' environment, as Heroku's release phase runs it before
    any process of a release starts (a PostgreSQL database must be migrated; SQLite would do it itself)."""
    done = subprocess.run([sys.executable, "-m", "bot", "migrate"], env=env, cwd=workdir,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"python -m bot migrate exited with {done.returncode}:\n{done.stderr[-2000:]}")


@contextlib.contextmanager
def servers(count: int, env: dict[str, str], workdir: Path, command: Sequence[str] | None = None) -> Iterator[
    list[ServerProcess]
]:
    """`count` servers of the same kind, booted side by side, stopped on the way out."""
    started = [ServerProcess(env, workdir, command) for _ in range(count)]
    try:
        for server in started:
            server.launch()
        for server in started:
            server.wait_ready()
        yield started
    finally:
        for server in started:
            server.stop()


def memory_kb(pid: int) -> dict[str, int]:
    """Resident (RSS) and proportional (PSS) memory of a process, in kB, from /proc."""
    figures: dict[str, int] = {}
    with contextlib.suppress(OSError):
        found = re.search(r"^VmRSS:\s*(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
        if found:
            figures["rss_kb"] = int(found.group(1))
    with contextlib.suppress(OSError):
        found = re.search(r"^Pss:\s*(\d+) kB", Path(f"/proc/{pid}/smaps_rollup").read_text(), re.M)
        if found:
            figures["pss_kb"] = int(found.group(1))
    return figures


def _end(process: subprocess.Popen[Any], *, timeout: float, group: bool = False) -> None:
    """SIGTERM (to the process group we created, for the server and its workers), then SIGKILL."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(process.pid, signal.SIGTERM)
            else:
                process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                if group:
                    os.killpg(process.pid, signal.SIGKILL)
                else:
                    process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


def fresh_round(fake: FakeSlack, emulator: EmulatorProcess) -> None:
    """Between a benchmark's scenarios: nothing recorded at the fake Slack, no fault, no call counted."""
    fake.reset()
    emulator.clear_faults()
    emulator.reset_calls()


def tracebacks(log: str) -> int:
    return log.count("Traceback (most recent call last)")


@contextlib.contextmanager
def workspace(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{prefix}-") as path:
        yield Path(path)


@contextlib.contextmanager
def fake_slack(*, socket_mode: bool = False) -> Iterator[FakeSlack]:
    """FakeSlack on HOST; with `socket_mode`, its loopback Socket Mode server too."""
    with SocketModeFakeSlack(host=HOST) if socket_mode else FakeSlack(host=HOST) as fake:
        yield fake
