"""The load a benchmark sends: signed Slack requests, the acks timed, the replies collected, and wrk.

- `CommandClient`: signed `/desk-languages` commands and button clicks over keep-alive
  connections, one per thread, timing each acknowledgement (`Sent`). It does little work
  per request, so the CPU stays with the server. `SocketClient`: the same over FakeSlack's
  Socket Mode server, to a connected `python -m bot socket`.
- `send_at_rate()` (open loop, at a fixed rate) and `send_burst()` (all at once).
- `deliveries()`, `wait_for_answers()`, `message_text()`: what reached each command's
  response_url at FakeSlack, and what a user reads in it.
- `run_wrk()`: wrk with a Lua script that sends one fixed, signed command and prints
  its figures as JSON.

The servers it loads are bench/processes.py's; every connection is to 127.0.0.1 (HOST).
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.processes import HOST, SIGNING_SECRET, close_with_server
from bot.sandbox.slack_emulator import (
    SANDBOX_CHANNEL_ID,
    SANDBOX_USER_ID,
    FakeSlack,
    Recorded,
    block_action_body,
    sign,
    slash_command_body,
)

COMMAND_PATH = "/slack/events"
ACK_DEADLINE = 3.0  # Slack's acknowledgement window, seconds


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


class CommandClient:
    """Sends signed slash commands to one server; one keep-alive connection per thread."""

    def __init__(self, port: int, fake: FakeSlack, *, timeout: float = 10.0) -> None:
        self.port = port
        self.fake = fake
        self.timeout = timeout
        self._local = threading.local()
        self._opened: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        close_with_server(port, self.close)

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

    def event(self, payload: dict[str, Any], name: str | None = None) -> Sent:
        """An Events API callback (e.g. FakeSlack's `function_executed_event`), signed, as Slack POSTs it."""
        return self.post(json.dumps(payload), name or uuid.uuid4().hex, f"event {payload['event'].get('type')}")

    def post(self, body: str, name: str, text: str) -> Sent:
        """POST one signed body to /slack/events; the ack, timed."""
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

    def event(self, payload: dict[str, Any], name: str | None = None) -> Sent:
        """An Events API callback as an `events_api` envelope."""
        name = name or uuid.uuid4().hex
        return self._await(name, f"event {payload['event'].get('type')}", lambda url: self.fake.socket_event(payload))

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
        shutil.which("wrk") or "wrk",
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
