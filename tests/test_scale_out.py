"""Scaling out, end to end: three `python -m bot serve` processes sharing one Redis.

Signed slash commands are spread over three real gunicorn servers (separate
processes, as separate dynos would be), with one real redis-server, the Desk
emulator and FakeSlack behind them. What Tencent sees must not depend on how many
processes serve Slack: a cold burst makes one Desk call, and a storm of refreshes
never exceeds 5 calls in any one-second window, so no user ever sees -14.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from bot.sandbox.desk_emulator import DeskEmulator
from bot.sandbox.slack_emulator import FakeSlack, sign, slash_command_body
from tests.support.environment import desk_env
from tests.support.served import BOOT_TIMEOUT, Served, clean_env, start_bot
from tests.support.services import RedisServer, free_port
from tests.support.slack_harness import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, slack_env, texts
from tests.support.tiers import e2e_fixture

LISTED = "English (`en`) :star: *default*"


def wait_until_healthy(served: Served) -> dict[str, Any]:
    """/healthz's report once the worker answers (gunicorn may accept before its worker is up)."""
    deadline = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            pytest.fail(f"python -m bot serve exited with {served.stop()}")
        try:
            report: dict[str, Any] = requests.get(f"{served.url}/healthz", timeout=2).json()
            return report
        except requests.RequestException:
            time.sleep(0.05)
    pytest.fail(f"python -m bot serve did not answer /healthz within {BOOT_TIMEOUT:.0f} s")


@e2e_fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=BOT_TOKEN, app_token=APP_TOKEN) as fake:
        yield fake


@contextlib.contextmanager
def serving(
    count: int,
    emulator: DeskEmulator,
    slack: FakeSlack,
    redis_url: str,
    home: Path,
    stopped: list[tuple[int, str]] | None = None,
) -> Iterator[list[Served]]:
    """`count` separate `python -m bot serve` processes sharing `redis_url`, once all are healthy.
    Their exit codes and stderr are appended to `stopped` when they have been stopped."""
    started: list[Served] = []
    try:
        for _ in range(count):
            port = free_port()
            env = clean_env(
                **desk_env(emulator),
                **slack_env(slack),
                REDIS_URL=redis_url,
                HOST="127.0.0.1",
                PORT=str(port),
                WEB_CONCURRENCY="1",
                LOG_LEVEL="WARNING",
            )
            env["HOME"] = str(home)  # where gunicorn would put a control socket
            started.append(Served(start_bot("serve", cwd=home, env=env), f"http://127.0.0.1:{port}"))
        for served in started:
            assert wait_until_healthy(served)["redis"] == "ok"
        yield started
    finally:
        for served in started:
            exit_code_and_stderr = served.stop()
            if stopped is not None:
                stopped.append(exit_code_and_stderr)


class Commands:
    """Signed slash commands sent to the servers; each one's answer, from its ack or response_url."""

    def __init__(self, slack: FakeSlack) -> None:
        self.slack = slack
        self.acked: dict[str, str] = {}  # response name -> the answer carried by the ack ("" if none)
        self._names = itertools.count()
        self._lock = threading.Lock()

    def send(self, served: Served, text: str) -> None:
        name = f"{text or 'list'}-{next(self._names)}"
        body = slash_command_body(text, response_url=self.slack.response_url(name))
        response = requests.post(f"{served.url}/slack/events", data=body, headers=sign(SIGNING_SECRET, body), timeout=5)
        assert response.status_code == 200
        with self._lock:
            self.acked[name] = texts(response.json()) if response.content else ""

    def answers(self) -> list[str]:
        with self._lock:
            acked = dict(self.acked)
        posted = {name: texts(self.slack.responses(name)[0].body) for name in acked if self.slack.responses(name)}
        return [acked[name] or posted.get(name, "") for name in acked]

    def wait_all_answered(self, timeout: float) -> list[str]:
        assert self.slack.wait_for(lambda _: all(self.answers()), timeout=timeout), self.answers()
        return self.answers()

    def clear(self) -> None:
        with self._lock:
            self.acked.clear()


def in_threads(count: int, target: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=target, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_three_serve_processes_share_one_desk_call_and_one_rate_limit(
    emulator: DeskEmulator, slack: FakeSlack, redis_url: str, tmp_path: Path
) -> None:
    commands = Commands(slack)
    with serving(3, emulator, slack, redis_url, tmp_path) as servers:
        # A cold burst spread over the three processes: one Desk call for all of them.
        in_threads(30, lambda index: commands.send(servers[index % 3], ""))
        assert all(LISTED in answer for answer in commands.wait_all_answered(timeout=10))
        assert len(emulator.calls) == 1

        # A refresh storm over the three processes for 3 s.
        commands.clear()
        emulator.reset_calls()
        time.sleep(1.0)
        until = time.monotonic() + 3.0

        def storm(index: int) -> None:
            while time.monotonic() < until:
                commands.send(servers[index % 3], "refresh")
                time.sleep(0.05)

        in_threads(6, storm)
        answers = commands.wait_all_answered(timeout=15)
    assert len(answers) >= 60
    for answer in answers:
        assert LISTED in answer
        assert "-14" not in answer and "Over this API's limit" not in answer
    assert emulator.max_calls_in_window(1.0) <= 5
    assert -14 not in {call.outcome for call in emulator.calls}
    # Refreshes coalesce across processes (a list younger than 1 s satisfies a refresh): about
    # one call per second for all three, where three separate caches would make about three.
    assert len(emulator.calls) <= 5


def test_serve_processes_answer_through_a_redis_outage_and_share_again_after(
    emulator: DeskEmulator, slack: FakeSlack, redis_process: RedisServer, tmp_path: Path
) -> None:
    commands = Commands(slack)
    stopped: list[tuple[int, str]] = []
    with serving(2, emulator, slack, redis_process.url, tmp_path, stopped) as servers:
        in_threads(2, lambda index: commands.send(servers[index], ""))
        commands.wait_all_answered(timeout=10)

        redis_process.stop()
        commands.clear()
        in_threads(10, lambda index: commands.send(servers[index % 2], "refresh" if index % 3 else ""))
        assert all(LISTED in answer for answer in commands.wait_all_answered(timeout=15))
        for served in servers:
            assert health_becomes(served, "degraded")

        redis_process.start()  # empty: the shared list and rate-limit log are gone
        for served in servers:
            assert health_becomes(served, "ok")  # checked again at most every 5 s
        emulator.set_languages([("en", 1), ("fr", 0)])
        time.sleep(1.1)
        emulator.reset_calls()
        commands.clear()
        commands.send(servers[0], "refresh")
        commands.wait_all_answered(timeout=10)
        commands.send(servers[1], "refresh")  # within a second: takes the list servers[0] shared
        answers = commands.wait_all_answered(timeout=10)
    assert all("French (`fr`)" in answer for answer in answers)
    assert len(emulator.calls) == 1
    for code, stderr in stopped:
        assert code == 0, stderr
        assert stderr.count("is unavailable") == 1, stderr  # one warning for the whole outage


def health_becomes(served: Served, state: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if requests.get(f"{served.url}/healthz", timeout=2).json().get("redis") == state:
            return True
        time.sleep(0.2)
    return False


def test_healthz_reports_redis_as_it_is_now_not_as_the_last_command_found_it(
    emulator: DeskEmulator, slack: FakeSlack, redis_process: RedisServer, tmp_path: Path
) -> None:
    """A command that used Redis a moment ago says nothing about a Redis that died since:
    /healthz PINGs (its answer kept for a second), so an outage shows within about a second."""
    commands = Commands(slack)
    with serving(1, emulator, slack, redis_process.url, tmp_path) as (served,):
        commands.send(served, "")
        commands.wait_all_answered(timeout=10)
        redis_process.stop()
        stopped_at = time.monotonic()
        assert health_becomes(served, "degraded", timeout=2.5)
        assert time.monotonic() - stopped_at < 2.5
        redis_process.start()
        started_at = time.monotonic()
        assert health_becomes(served, "ok", timeout=2.5)
        assert time.monotonic() - started_at < 2.5
