"""The HTTP edge as an attacker meets it: `python -m bot serve` (the production server) on loopback,
sent what anyone on the internet can send before a signature is checked.

Each test is one defect found by a review of the front door: a pathological body that froze the
worker, no body limit, slow headers, malformed requests answered with 500 and a traceback, bodies
logged verbatim, `response_url`s pointing anywhere, boot failures that were not one line.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import requests

from bot.sandbox.desk_emulator import SANDBOX_KEY, DeskEmulator, Fault
from bot.sandbox.slack_emulator import FakeSlack, sign, slash_command_body
from tests.support.environment import desk_env
from tests.support.served import Served, assert_one_line_config_error, clean_env, run_bot, start_bot
from tests.support.services import free_port
from tests.support.slack_harness import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, slack_env
from tests.support.tiers import e2e_fixture

EVENTS_PATH = "/slack/events"


@e2e_fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=BOT_TOKEN, app_token=APP_TOKEN) as fake:
        yield fake


def serve(emulator: DeskEmulator, slack: FakeSlack, tmp_path: Path, **env: str) -> Served:
    port = free_port()
    environ = clean_env(
        **{**desk_env(emulator), **slack_env(slack), "HOST": "127.0.0.1", "PORT": str(port), "LOG_LEVEL": "INFO", **env}
    )
    environ["HOME"] = str(tmp_path)
    served = Served(start_bot("serve", cwd=tmp_path, env=environ), f"http://127.0.0.1:{port}")
    served.wait_until_healthy()
    return served


@pytest.fixture
def served(emulator: DeskEmulator, slack: FakeSlack, tmp_path: Path) -> Iterator[Served]:
    bot = serve(emulator, slack, tmp_path)
    yield bot
    bot.stop()


def address(served: Served) -> tuple[str, int]:
    host, port = served.url.removeprefix("http://").split(":")
    return host, int(port)


def raw_request(served: Served, head: str, body: bytes = b"", *, read_timeout: float = 5.0) -> bytes:
    """Send `head` (request line and headers, without the blank line) and `body` on a fresh
    connection; return everything the server answers until it closes or goes quiet."""
    with socket.create_connection(address(served), timeout=read_timeout) as conn:
        conn.sendall(head.encode() + b"\r\n\r\n" + body)
        answer = b""
        try:
            while chunk := conn.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer and (b"Content-Length: 0" in answer or answer.endswith(b"}")):
                    break
        except (TimeoutError, ConnectionResetError):
            pass
    return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def health_latency(served: Served) -> float:
    started = time.monotonic()
    assert requests.get(f"{served.url}/healthz", timeout=5).status_code == 200
    return time.monotonic() - started


def sign_bytes(body: bytes) -> dict[str, str]:
    """Slack's v0 signature over raw bytes (slack_sdk's signer wants text, and some bodies are not)."""
    timestamp = str(int(time.time()))
    digest = hmac.new(SIGNING_SECRET.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": "v0=" + digest.hexdigest(),
        "Content-Type": "application/x-www-form-urlencoded",
    }


def signed_command(served: Served, slack: FakeSlack, text: str, **fields: str) -> requests.Response:
    body = slash_command_body(text, response_url=fields.pop("response_url", slack.response_url("cmd")))
    return requests.post(f"{served.url}{EVENTS_PATH}", data=body, headers=sign(SIGNING_SECRET, body), timeout=5)


# --- the worker never freezes, whatever the body ---------------------------------------------------


@pytest.mark.parametrize("kind", ["dots", "url-password", "many-at"])
def test_a_pathological_unsigned_body_is_refused_fast_while_healthz_answers(served: Served, kind: str) -> None:
    size = 320 * 1024  # took 29.9 s to refuse (and froze /healthz) before the edge
    body = {"dots": b"a." * (size // 2), "url-password": b"a://a:" * (size // 6), "many-at": b"@a" * (size // 2)}[
        kind
    ]
    done: dict[str, float] = {}

    def attack() -> None:
        started = time.monotonic()
        response = requests.post(f"{served.url}{EVENTS_PATH}", data=body, timeout=30)
        done["status"], done["seconds"] = response.status_code, time.monotonic() - started

    thread = threading.Thread(target=attack)
    thread.start()
    latencies = [health_latency(served) for _ in range(5)]
    thread.join(30)
    assert done["status"] == 401
    assert done["seconds"] < 2.0
    assert max(latencies) < 1.0


def test_a_huge_or_unsized_body_gets_413_before_it_is_read(served: Served) -> None:
    declared = 50 * 1024 * 1024
    answer = raw_request(
        served,
        f"POST {EVENTS_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {declared}",
        b"x" * 4096,  # only a sliver of the 50 MB is ever sent: the answer must not wait for the rest
    )
    assert status_of(answer) == 413
    chunked = raw_request(
        served, f"POST {EVENTS_PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked", b"5\r\nhello\r\n0\r\n\r\n"
    )
    assert status_of(chunked) in (411, 413)
    assert health_latency(served) < 1.0


def test_slow_headers_are_cut_and_cost_the_server_nothing(served: Served, slack: FakeSlack) -> None:
    trickling: list[socket.socket] = []
    try:
        for _ in range(100):
            conn = socket.create_connection(address(served), timeout=5)
            conn.sendall(f"POST {EVENTS_PATH} HTTP/1.1\r\nHost: x\r\n".encode())
            trickling.append(conn)
        for round_ in range(3):
            for conn in trickling:
                with contextlib.suppress(OSError):  # already cut by the server: that is the point
                    conn.sendall(f"X-Slow-{round_}: 1\r\n".encode())
            assert health_latency(served) < 1.0
            started = time.monotonic()
            assert signed_command(served, slack, "help").status_code == 200
            assert time.monotonic() - started < 1.0
            time.sleep(1.0)
    finally:
        for conn in trickling:
            conn.close()


def open_trickling_bodies(served: Served, count: int) -> list[socket.socket]:
    """`count` connections that announce a 1 MB body and have sent one byte of it."""
    conns = []
    for _ in range(count):
        conn = socket.create_connection(address(served), timeout=5)
        conn.sendall(
            f"POST {EVENTS_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            "Content-Length: 1000000\r\n\r\na".encode()
        )
        conns.append(conn)
    return conns


def test_slow_bodies_hold_no_thread_and_are_cut_at_their_deadline(
    emulator: DeskEmulator, slack: FakeSlack, tmp_path: Path
) -> None:
    # The review's outage: four such connections held all four request threads of a worker for as
    # long as they kept sending; /healthz and signed commands timed out meanwhile.
    served = serve(emulator, slack, tmp_path, WEB_BODY_TIMEOUT="4")
    trickling = open_trickling_bodies(served, 100)
    try:
        opened = time.monotonic()
        while time.monotonic() - opened < 3.0:  # every connection keeps sending, inside its deadline
            for conn in trickling:
                conn.sendall(b"a")
            assert health_latency(served) < 1.0
            started = time.monotonic()
            assert signed_command(served, slack, "help").status_code == 200
            assert time.monotonic() - started < 3.0  # Slack's ack deadline
            time.sleep(0.3)
        # Past the deadline each one is answered 408 and closed, though it still sends.
        answers: dict[int, bytes] = {}
        cut_by = time.monotonic() + 6.0
        while len(answers) < len(trickling) and time.monotonic() < cut_by:
            for number, conn in enumerate(trickling):
                if number in answers:
                    continue
                with contextlib.suppress(OSError):
                    conn.sendall(b"a")
                conn.settimeout(0.01)
                with contextlib.suppress(TimeoutError, BlockingIOError):
                    try:
                        answers[number] = conn.recv(4096)
                    except ConnectionResetError:
                        answers[number] = b""
            time.sleep(0.2)
        assert len(answers) == len(trickling), f"{len(trickling) - len(answers)} slow bodies were never cut"
        assert all(answer == b"" or status_of(answer) == 408 for answer in answers.values())
        assert sum(1 for answer in answers.values() if answer) >= 90  # answered, not merely dropped
    finally:
        for conn in trickling:
            conn.close()
        _, log = served.stop()
    assert "with 408: body not received within 4 s" in log
    assert "Traceback" not in log


# --- malformed requests: a 4xx, never a 500 or a traceback -------------------------------------------


MALFORMED = {
    "timestamp-abc": ({"X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "v0=00"}, b"text=hi"),
    "json-broken": ({"Content-Type": "application/json"}, b"{bad"),
    "payload-broken": ({}, b"payload=%7Bx"),
    "not-utf8": ({}, b"text=\xff\xfe\xfa"),
    "json-array": ({"Content-Type": "application/json"}, b"[1]"),
}


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_malformed_unsigned_requests_get_a_4xx_without_a_traceback(
    emulator: DeskEmulator, slack: FakeSlack, tmp_path: Path, kind: str
) -> None:
    headers, body = MALFORMED[kind]
    bot = serve(emulator, slack, tmp_path)
    try:
        response = requests.post(f"{bot.url}{EVENTS_PATH}", data=body, headers=headers, timeout=5)
        assert response.status_code in (400, 401)
    finally:
        _, stderr = bot.stop()
    assert "Traceback" not in stderr and " ERROR " not in stderr


@pytest.mark.parametrize("kind", ["json-broken", "payload-broken", "not-utf8", "json-array"])
def test_malformed_but_signed_requests_get_400_without_a_traceback(
    emulator: DeskEmulator, slack: FakeSlack, tmp_path: Path, kind: str
) -> None:
    headers, body = MALFORMED[kind]
    bot = serve(emulator, slack, tmp_path)
    try:
        signed = {**sign_bytes(body), **headers}
        response = requests.post(f"{bot.url}{EVENTS_PATH}", data=body, headers=signed, timeout=5)
        assert response.status_code == 400
    finally:
        _, stderr = bot.stop()
    assert "Traceback" not in stderr and " ERROR " not in stderr


def test_refused_requests_are_logged_as_one_line_without_their_body(
    emulator: DeskEmulator, slack: FakeSlack, tmp_path: Path
) -> None:
    bot = serve(emulator, slack, tmp_path)
    secretish = "token=Zq8SECRETVALUEq8Z&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1%2F2%2FSECRETPATH"
    forged = secretish + "&text=x%0A2026-01-01 00:00:00 ERROR forged line\nERROR forged too"
    try:
        for _ in range(20):
            assert requests.post(f"{bot.url}{EVENTS_PATH}", data=forged, timeout=5).status_code == 401
    finally:
        _, stderr = bot.stop()
    for leaked in ("Zq8SECRETVALUEq8Z", "SECRETPATH", "forged"):
        assert leaked not in stderr
    refusals = [line for line in stderr.splitlines() if "Refused POST /slack/events" in line]
    assert len(refusals) == 1  # 20 alike within a minute: one line, the rest counted
    assert "401" in refusals[0] and "no Slack signature" in refusals[0] and "WARNING" in refusals[0]


# --- the bot posts replies only to Slack ---------------------------------------------------------------


class Recorder(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        Recorder.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_response_url_outside_slack_is_never_posted_to(served: Served, slack: FakeSlack) -> None:
    internal = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=internal.serve_forever, daemon=True).start()
    try:
        target = f"http://127.0.0.1:{internal.server_address[1]}/internal/admin"
        assert signed_command(served, slack, "", response_url=target).status_code == 200
        time.sleep(1.5)  # the lazy listener has long run by now
        assert Recorder.hits == []
        assert signed_command(served, slack, "refresh", response_url=slack.response_url("ok")).status_code == 200
        assert slack.wait_for(lambda fake: bool(fake.responses("ok")), timeout=5)
    finally:
        internal.shutdown()
        _, stderr = served.stop()
    assert "outside Slack's hosts (host 127.0.0.1)" in stderr
    assert "/internal/admin" not in stderr


# --- the server's life cycle ------------------------------------------------------------------------


def test_sigterm_lets_an_in_flight_lazy_reply_finish(emulator: DeskEmulator, slack: FakeSlack, tmp_path: Path) -> None:
    bot = serve(emulator, slack, tmp_path)
    emulator.inject(Fault(hang=0.8))  # Desk is slow (within DESK_TIMEOUT=1): the reply is still on its way at SIGTERM
    try:
        assert signed_command(bot, slack, "", response_url=slack.response_url("late")).status_code == 200
    finally:
        code, stderr = bot.stop()
    assert code == 0, stderr
    (late,) = slack.responses("late")  # delivered, once, before the worker exited
    assert "English" in str(late.body)


def worker_pids(served: Served) -> list[int]:
    children = Path(f"/proc/{served.process.pid}/task/{served.process.pid}/children").read_text().split()
    return [int(pid) for pid in children]


def test_a_worker_that_dies_is_replaced(served: Served, slack: FakeSlack) -> None:
    (worker,) = worker_pids(served)
    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while True:
        replaced = [pid for pid in worker_pids(served) if pid != worker]
        if replaced:
            try:
                if requests.get(f"{served.url}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
        assert time.monotonic() < deadline, "no new worker answered within 15 s"
        time.sleep(0.1)
    assert signed_command(served, slack, "help").status_code == 200
    assert served.process.poll() is None


# --- boot ------------------------------------------------------------------------------------------------


def test_a_database_down_at_boot_degrades_digests_but_serves_commands(
    emulator: DeskEmulator, slack: FakeSlack, tmp_path: Path
) -> None:
    closed = free_port()
    bot = serve(
        emulator,
        slack,
        tmp_path,
        DATABASE_URL=f"postgres://bot:p%40ss@127.0.0.1:{closed}/bot",
        DIGEST_CHANNEL="C0DIGEST",
        DIGEST_SCHEDULE="daily 09:00",
    )
    try:
        deadline = time.monotonic() + 10
        while (health := requests.get(f"{bot.url}/healthz", timeout=2).json()).get("digests") != "degraded":
            assert time.monotonic() < deadline, health
            time.sleep(0.1)
        assert signed_command(bot, slack, "help").status_code == 200
    finally:
        code, stderr = bot.stop()
    assert code == 0, stderr
    assert "digests unavailable" in stderr and "DATABASE_URL" in stderr
    assert "Traceback" not in stderr and "p@ss" not in stderr


def test_a_refused_app_token_is_one_line_and_exit_2(slack: FakeSlack, tmp_path: Path) -> None:
    slack.script("apps.connections.open", body={"ok": False, "error": "invalid_auth"})
    env = clean_env(DESK_SANDBOX="1", **slack_env(slack, SLACK_APP_TOKEN=APP_TOKEN))
    result = run_bot("socket", cwd=tmp_path, env=env)
    assert_one_line_config_error(result, "SLACK_APP_TOKEN")
    assert "invalid_auth" in result.stderr and APP_TOKEN not in result.stderr and SANDBOX_KEY not in result.stderr


def test_metrics_relayed_by_a_proxy_on_this_host_is_not_local(served: Served) -> None:
    """Loopback without a token reads /metrics, but not through a reverse proxy on the same host:
    its forwarding header says the client is someone else (granian's RSGI scope, not WSGI's)."""
    assert requests.get(f"{served.url}/metrics", timeout=5).status_code == 200
    for header, value in (("X-Forwarded-For", "203.0.113.9"), ("Forwarded", "for=203.0.113.9"), ("X-Real-IP", "::1")):
        relayed = requests.get(f"{served.url}/metrics", headers={header: value}, timeout=5)
        assert relayed.status_code == 404, header
        assert "desk_languages_bot" not in relayed.text


def test_several_workers_without_redis_warn_once_that_they_do_not_share(
    emulator: DeskEmulator, slack: FakeSlack, tmp_path: Path
) -> None:
    """Without Redis each worker has its own cache: a change made through one is not seen by the
    others until their lists expire. Said once at start, in the parent, not once per worker."""

    def stderr_of_serve(workers: str) -> str:
        port = free_port()
        environ = clean_env(
            **desk_env(emulator), **slack_env(slack), HOST="127.0.0.1", PORT=str(port), WEB_CONCURRENCY=workers
        )
        log = tmp_path / f"serve-{workers}.log"
        # stderr to a file and the server in its own process group: workers that outlive a
        # stopped parent can then hold no pipe open, and the whole group is ended at once.
        with log.open("w") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "bot", "serve"], cwd=tmp_path, env=environ,
                stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
            )
        try:
            Served(process, f"http://127.0.0.1:{port}").wait_until_healthy()
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        return log.read_text(encoding="utf-8")

    warning = "WEB_CONCURRENCY=2 without REDIS_URL"
    several = stderr_of_serve("2")
    assert several.count(warning) == 1, several
    assert "set REDIS_URL" in several
    assert "without REDIS_URL" not in stderr_of_serve("1")
