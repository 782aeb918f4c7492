"""What every benchmark needs: the processes under test, a light command client, wrk, and results.

- `EmulatorProcess`: the Desk emulator as its own process (`python -m bot sandbox`),
  driven through its HTTP control API (faults, recorded calls).
- `ServerProcess`: a server as its own process, by default the bot itself under its
  own server (`python -m bot serve`, granian); `reference_command()` serves one of
  bench/baselines.py's apps (or the bot's WSGI app) under granian or gunicorn;
  `bot_environment()` points them at the emulator and at a `FakeSlack` running in the
  benchmark's process, listening on 127.0.0.1 only (HOST).
- `CommandClient`: signed `/desk-languages` commands over keep-alive connections, one
  per thread, timing each acknowledgement. It does little work per request, so the
  CPU stays with the server.
- `run_wrk()`: wrk with a Lua script that sends one fixed, signed command and prints
  its figures as JSON.
- `Options`, `write_results()`, `print_table()`, `machine()`: the command line, the
  JSON under bench/results/, the table on stdout, and the machine's description.

Everything listens and connects on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from bot.desk.sandbox import SANDBOX_KEY, SANDBOX_SDKAPPID, sandbox_identity
from bot.slack_sandbox import (
    SANDBOX_CHANNEL_ID,
    SANDBOX_USER_ID,
    FakeSlack,
    Recorded,
    block_action_body,
    sign,
    slash_command_body,
)
from tests.support.services import free_port

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = REPO / "bench" / "results"
HOST = "127.0.0.1"
SIGNING_SECRET = "bench-signing-secret-not-a-real-one"  # made up: the servers under test only see loopback
COMMAND_PATH = "/slack/events"
ACK_DEADLINE = 3.0  # Slack's acknowledgement window, seconds
LIBRARIES = (
    "slack-bolt", "slack-sdk", "granian", "gunicorn", "requests", "cachetools", "pyrate-limiter", "tenacity", "redis",
)
# Variables of the developer's own environment that must not leak into a server under test.
_OWN_PREFIXES = ("DESK_", "SLACK_", "DIGEST_", "REDIS_", "DATABASE_", "WEB_", "PORT", "LOG_LEVEL", "HOST")
SERVERS = ("granian", "gunicorn")


# --- command line and results ------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    smoke: bool
    results_dir: Path


def parse_options(description: str, argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true", help="a run of a few seconds, to check the script works")
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=Path(os.environ.get("BENCH_RESULTS_DIR") or DEFAULT_RESULTS),
        help="where the JSON figures go (default: bench/results, or $BENCH_RESULTS_DIR)",
    )
    args = parser.parse_args(argv)
    return Options(smoke=args.smoke, results_dir=args.results_dir)


def write_results(name: str, options: Options, figures: dict[str, Any]) -> Path:
    """Write `<results_dir>/<name>.json` (`<name>.smoke.json` for a smoke run)."""
    options.results_dir.mkdir(parents=True, exist_ok=True)
    path = options.results_dir / f"{name}{'.smoke' if options.smoke else ''}.json"
    document = {
        "benchmark": name,
        "smoke": options.smoke,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        **figures,
    }
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    print(f"\nfigures written to {path}")
    return path


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    print(f"\n{title}")
    for index, row in enumerate(cells):
        print("  ".join(value.rjust(widths[i]) if i else value.ljust(widths[i]) for i, value in enumerate(row)))
        if index == 0:
            print("  ".join("-" * w for w in widths))


def keep_log(name: str, options: Options, text: str) -> Path:
    """Keep a server's log next to the figures (`<name>.server.log`), for reading after the run."""
    options.results_dir.mkdir(parents=True, exist_ok=True)
    path = options.results_dir / f"{name}{'.smoke' if options.smoke else ''}.server.log"
    path.write_text(text, encoding="utf-8")
    return path


def print_targets(targets: Sequence[dict[str, Any]]) -> None:
    print_table("Targets", ["target", "measured", "met"], [[t["target"], t["measured"], t["met"]] for t in targets])


def target(description: str, measured: str, met: bool) -> dict[str, Any]:
    return {"target": description, "measured": measured, "met": bool(met)}


def main_for(name: str, description: str, run: Callable[[Options], dict[str, Any]], argv: Sequence[str] | None) -> int:
    """The command line of one benchmark: parse, run, time, write the JSON."""
    options = parse_options(description, argv)
    started = time.monotonic()
    figures = run(options)
    figures["wall_seconds"] = round(time.monotonic() - started, 1)
    write_results(name, options, figures)
    return 0


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "—" if value is None else str(value)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def spread_ms(values_s: Sequence[float]) -> dict[str, float | None]:
    """p50, p99 and max of durations given in seconds, in milliseconds."""
    as_ms = [v * 1000 for v in values_s]
    return {
        "p50_ms": _round(percentile(as_ms, 50)),
        "p99_ms": _round(percentile(as_ms, 99)),
        "max_ms": _round(max(as_ms) if as_ms else None),
    }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


# --- the machine -------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, OS, and the versions of Python and of the libraries on the path."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = found.group(1).strip() if found else platform.processor() or "unknown"
    memory_gb = None
    with contextlib.suppress(OSError, AttributeError, ValueError):
        kb = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        memory_gb = round(int(kb.group(1)) / 1024 / 1024, 1) if kb else None
    versions: dict[str, str] = {}
    for name in LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": memory_gb,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "libraries": versions,
        "wrk": _first_line([_which("wrk"), "-v"]),
        "redis-server": _first_line([_which("redis-server"), "--version"]),
    }


def _which(program: str) -> str:
    return shutil.which(program) or program


def _first_line(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else None


# --- ports and HTTP ----------------------------------------------------------------------------


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

    def __init__(self, app_index: int = 0, sample: str | None = None) -> None:
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.app_index = app_index  # the N-th emulated app: its own SDKAppID and key (sandbox_identity)
        self.sample = sample  # the starting data; None: the app's own (sample_for_app)
        self.sdkappid, self.key = sandbox_identity(app_index)
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> EmulatorProcess:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bot", "sandbox", "--port", str(self.port), "--host", HOST,
             "--app-index", str(self.app_index), *(["--sample", self.sample] if self.sample else [])],
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
        "api": the API's command, "body": the JSON body sent}."""
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
        with _clients_lock:
            clients = _clients.pop(self.port, [])
        for client in clients:
            client.close()
        process, self._process = self._process, None
        if process is not None:
            _end(process, timeout=15, group=True)

    def kill(self) -> None:
        """SIGKILL the server and its workers at once (a crash: no graceful stop); `start()` again
        brings it back on the same port."""
        with _clients_lock:
            clients = list(_clients.get(self.port, []))
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for client in clients:  # their keep-alive connections are dead; the clients stay usable
            client.close()

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


def tracebacks(log: str) -> int:
    return log.count("Traceback (most recent call last)")


@contextlib.contextmanager
def workspace(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{prefix}-") as path:
        yield Path(path)


@contextlib.contextmanager
def fake_slack(*, socket_mode: bool = False) -> Iterator[FakeSlack]:
    """FakeSlack on HOST; with `socket_mode`, its loopback Socket Mode server too."""
    with FakeSlack(host=HOST, socket_mode=socket_mode) as fake:
        yield fake


# --- commands as Slack sends them --------------------------------------------------------------


@dataclass
class Sent:
    """One command: what was sent, and how the server acknowledged it."""

    name: str  # the response_url's name at FakeSlack
    text: str
    sent_at: float  # wall clock, comparable with FakeSlack's `Recorded.at`
    status: int = 0  # HTTP status of the ack; 0 = no answer (connection error or timeout)
    ack_s: float = 0.0
    body: bytes = b""
    error: str = ""

    @property
    def answered_in_ack(self) -> bool:
        """The ack carried a message (the list, help, …), not just an empty 200."""
        return self.status == 200 and self.body.strip().startswith(b"{")

    @property
    def acked(self) -> bool:
        return self.status == 200 and self.ack_s <= ACK_DEADLINE


_clients: dict[int, list[CommandClient]] = {}  # by server port: closed when that server stops
_clients_lock = threading.Lock()


class CommandClient:
    """Sends signed slash commands to one server; one keep-alive connection per thread."""

    def __init__(self, port: int, fake: FakeSlack, *, timeout: float = 10.0) -> None:
        self.port = port
        self.fake = fake
        self.timeout = timeout
        self._local = threading.local()
        self._opened: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        with _clients_lock:
            _clients.setdefault(port, []).append(self)

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
            self._local.connection = connection
            with self._lock:
                self._opened.append(connection)
        return connection

    def close(self) -> None:
        """Close every keep-alive connection (a server's graceful stop waits for open ones)."""
        with self._lock:
            opened = list(self._opened)  # kept: a closed connection reopens on its next request
        for connection in opened:
            connection.close()

    def send(
        self, text: str = "", name: str | None = None, *, channel_id: str = SANDBOX_CHANNEL_ID,
        user_id: str = SANDBOX_USER_ID,
    ) -> Sent:
        """A slash command (from the sandbox's channel and user unless given)."""
        name = name or uuid.uuid4().hex
        body = slash_command_body(
            text, response_url=self.fake.response_url(name), channel_id=channel_id, user_id=user_id
        )
        return self.post(body, name, text)

    def click(
        self, action_id: str, value: str, name: str | None = None, *, channel_id: str = SANDBOX_CHANNEL_ID,
        user_id: str = SANDBOX_USER_ID,
    ) -> Sent:
        """A button click (block_actions) on an ephemeral message, as Slack sends it."""
        name = name or uuid.uuid4().hex
        body = block_action_body(
            action_id, response_url=self.fake.response_url(name), value=value, channel_id=channel_id, user_id=user_id
        )
        return self.post(body, name, f"click {action_id}")

    def post(self, body: str, name: str, text: str) -> Sent:
        """POST one signed form body to /slack/events; the ack, timed."""
        headers = sign(SIGNING_SECRET, body)
        sent = Sent(name=name, text=text, sent_at=time.time())
        started = time.perf_counter()
        for attempt in (1, 2):  # a keep-alive connection the server closed is reopened once
            connection = self._connection()
            try:
                connection.request("POST", COMMAND_PATH, body=body, headers=headers)
                response = connection.getresponse()
                sent.body = response.read()
                sent.status = response.status
                break
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                self._local.connection = None
                reused = attempt == 1 and isinstance(
                    error, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError
                )
                if not reused:
                    sent.error = type(error).__name__
                    break
                started = time.perf_counter()
        sent.ack_s = time.perf_counter() - started
        return sent


class SocketClient:
    """`CommandClient`'s `send` and `click` over FakeSlack's Socket Mode server: each request an
    envelope to the connected `python -m bot socket`, its ack read back from that connection.

    The `Sent` it returns reads like an HTTP one: status 200 when acked (0 if no ack came within
    `timeout`), `body` the JSON message the ack carried (empty for an empty ack)."""

    def __init__(self, fake: FakeSlack, *, timeout: float = 10.0) -> None:
        self.fake = fake
        self.timeout = timeout

    def send(
        self, text: str = "", name: str | None = None, *, channel_id: str = SANDBOX_CHANNEL_ID,
        user_id: str = SANDBOX_USER_ID,
    ) -> Sent:
        name = name or uuid.uuid4().hex
        return self._await(name, text, lambda url: self.fake.socket_command(
            text, response_url=url, channel_id=channel_id, user_id=user_id))

    def click(
        self, action_id: str, value: str, name: str | None = None, *, channel_id: str = SANDBOX_CHANNEL_ID,
        user_id: str = SANDBOX_USER_ID,
    ) -> Sent:
        name = name or uuid.uuid4().hex
        return self._await(name, f"click {action_id}", lambda url: self.fake.socket_click(
            action_id, response_url=url, value=value, channel_id=channel_id, user_id=user_id))

    def _await(self, name: str, text: str, envelope: Callable[[str], str]) -> Sent:
        sent = Sent(name=name, text=text, sent_at=time.time())
        started = time.monotonic()
        envelope_id = envelope(self.fake.response_url(name))
        if not self.fake.socket.wait(lambda server: bool(server.acks(envelope_id)), self.timeout):
            sent.error = "no ack"
            sent.ack_s = time.monotonic() - started
            return sent
        ack = self.fake.socket.acks(envelope_id)[0]
        sent.status, sent.ack_s = 200, ack.at - started
        sent.body = json.dumps(ack.payload).encode() if ack.payload is not None else b""
        return sent


def send_at_rate(
    client: CommandClient | Sequence[CommandClient],
    texts: Sequence[str],
    rate: float,
    *,
    threads: int = 32,
    on_tick: Callable[[int], None] | None = None,
) -> list[Sent]:
    """Send `texts` open-loop at `rate` per second (the schedule does not wait for slow acks).

    With several clients (several servers), commands go to them in turn.
    """
    clients = [client] if isinstance(client, CommandClient) else list(client)
    results: list[Sent | None] = [None] * len(texts)
    start = time.monotonic()

    def one(index: int) -> None:
        results[index] = clients[index % len(clients)].send(texts[index])

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sender") as pool:
        for index in range(len(texts)):
            delay = start + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if on_tick is not None:
                on_tick(index)
            pool.submit(one, index)
    return [r for r in results if r is not None]


def send_burst(client: CommandClient, texts: Sequence[str]) -> tuple[float, list[Sent]]:
    """Send all `texts` at once, one thread and connection each; the wall-clock moment they left."""
    barrier = threading.Barrier(len(texts) + 1)
    results: list[Sent | None] = [None] * len(texts)

    def one(index: int) -> None:
        client._connection().connect()  # connected before the barrier: the burst is only the requests
        barrier.wait()
        results[index] = client.send(texts[index])

    workers = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(texts))]
    for worker in workers:
        worker.start()
    barrier.wait()
    released = time.time()
    for worker in workers:
        worker.join()
    return released, [r for r in results if r is not None]


@dataclass
class Delivery:
    """What reached one command's response_url."""

    accepted: list[Recorded] = field(default_factory=list)  # answered 2xx: the user saw these
    refused: list[Recorded] = field(default_factory=list)  # answered with an error (scripted 500, …)


def deliveries(fake: FakeSlack) -> dict[str, Delivery]:
    """response_url posts grouped by the command's name."""
    grouped: dict[str, Delivery] = {}
    for call in fake.responses():
        name = call.path.rsplit("/", 1)[-1]
        entry = grouped.setdefault(name, Delivery())
        (entry.accepted if 200 <= call.status < 300 else entry.refused).append(call)
    return grouped


def wait_for_answers(fake: FakeSlack, names: set[str], timeout: float) -> bool:
    """Wait until every name in `names` has had an accepted response_url post."""

    def done(slack: FakeSlack) -> bool:
        answered = {c.path.rsplit("/", 1)[-1] for c in slack.responses() if 200 <= c.status < 300}
        return names <= answered

    return fake.wait_for(done, timeout=timeout)


def message_text(message: dict[str, Any]) -> str:
    """Everything a user reads in a message: the fallback text and every block's text."""
    return str(message.get("text") or "") + json.dumps(message.get("blocks") or [], ensure_ascii=False)


# --- wrk -----------------------------------------------------------------------------------------

_WRK_SCRIPT = """
wrk.method = "POST"
wrk.path = "{path}"
wrk.body = [==[{body}]==]
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK-JSON {{"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
    .. '"max_us": %d, "mean_us": %.1f, "connect_errors": %d, "read_errors": %d, "write_errors": %d, '
    .. '"status_errors": %d, "timeouts": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    port: int,
    body: str,
    *,
    connections: int,
    duration: float,
    threads: int = 1,
    workdir: Path,
) -> dict[str, Any]:
    """wrk against 127.0.0.1:`port` sending `body` signed now (valid 5 minutes); its figures."""
    headers = sign(SIGNING_SECRET, body)
    script = workdir / f"wrk-{uuid.uuid4().hex[:8]}.lua"
    script.write_text(
        _WRK_SCRIPT.format(
            path=COMMAND_PATH,
            body=body,
            headers="\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()),
        ),
        encoding="utf-8",
    )
    command = [
        _which("wrk"),
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        f"http://{HOST}:{port}{COMMAND_PATH}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 30, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK-JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no figures (exit {done.returncode}): {done.stderr or done.stdout}")
    raw = json.loads(line[len("WRK-JSON ") :])
    seconds = raw["duration_us"] / 1e6
    errors = sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    return {
        "connections": connections,
        "requests": raw["requests"],
        "seconds": round(seconds, 2),
        "rps": round(raw["requests"] / seconds, 1) if seconds else 0.0,
        "p50_ms": round(raw["p50_us"] / 1000, 3),
        "p90_ms": round(raw["p90_us"] / 1000, 3),
        "p99_ms": round(raw["p99_us"] / 1000, 3),
        "max_ms": round(raw["max_us"] / 1000, 3),
        "errors": errors,
        "non_2xx": raw["status_errors"],
    }
