"""Prometheus metrics and JSON logs: `/metrics` summed over granian's workers (a killed worker's
counts included), its access rules, Socket Mode's metrics server, JSON log lines with the
request's context, and no secret or user text in a label.

The served tests run the real `python -m bot serve` with two workers against the Desk emulator
and FakeSlack, over loopback; the access rules are checked over the socket where a real client
can reach them, and on the WSGI endpoint directly for a non-loopback client address.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from bot import metrics
from bot.config import ConfigError, load_settings
from bot.metrics import MetricsEndpoint, mark_dead_workers
from bot.sandbox.desk_emulator import SANDBOX_KEY, DeskEmulator
from bot.sandbox.slack_emulator import SANDBOX_CHANNEL_ID, SANDBOX_USER_ID, FakeSlack, sign, slash_command_body
from bot.serve import start_metrics_server
from tests.support.environment import desk_env, make_settings
from tests.support.served import Served, clean_env
from tests.support.services import free_port
from tests.support.slack_harness import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, running_bot, slack_env
from tests.support.tiers import e2e_fixture

TOKEN = "metrics0token0not0real0f00d"
USER_TEXT = "zebra-quokka-91"  # typed by a user: it must never become a label


@e2e_fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=BOT_TOKEN, app_token=APP_TOKEN) as fake:
        yield fake


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, keyed by name and sorted labels (the parser checks the format)."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def total(scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(
        value for (sample, keys), value in scraped.items()
        if sample == name and all((k, v) in keys for k, v in labels.items())
    )


def children(pid: int) -> list[int]:
    """The pids of `pid`'s child processes (granian's workers), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.fixture
def served(emulator: DeskEmulator, slack: FakeSlack, tmp_path: Path) -> Iterator[tuple[Served, Path]]:
    port = free_port()
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_1.db").write_bytes(b"left over from an earlier run")  # serve must empty it
    env = clean_env(
        **desk_env(emulator),
        **slack_env(slack),
        HOST="127.0.0.1",
        PORT=str(port),
        WEB_CONCURRENCY="2",
        LOG_LEVEL="DEBUG",
        LOG_FORMAT="json",
        METRICS_TOKEN=TOKEN,
        PROMETHEUS_MULTIPROC_DIR=str(directory),
    )
    # stderr to a file: at DEBUG the workers write more than a pipe holds before it is read.
    with (tmp_path / "stderr.log").open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
    bot = Served(process, f"http://127.0.0.1:{port}")
    try:
        bot.wait_until_healthy()
        yield bot, tmp_path
    finally:
        bot.stop()


def scrape(bot: Served) -> str:
    response = requests.get(f"{bot.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return response.text


def send_commands(bot: Served, slack: FakeSlack, count: int, text: str) -> set[str]:
    """Send `count` signed commands at once; the response names whose answer is still to be posted
    (a worker whose cache is already warm answers in the ack instead, and posts nothing)."""
    pending: set[str] = set()
    lock = threading.Lock()

    def one(index: int) -> None:
        name = f"m{index}"
        body = slash_command_body(text, response_url=slack.response_url(name))
        # A new connection each (no session, Connection: close), so the kernel spreads them over workers.
        headers = {**sign(SIGNING_SECRET, body), "Connection": "close"}
        response = requests.post(f"{bot.url}/slack/events", data=body, headers=headers, timeout=5)
        assert response.status_code == 200
        if not response.content:
            with lock:
                pending.add(name)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return pending


def test_two_workers_are_summed_and_a_killed_workers_counts_stay(
    served: tuple[Served, Path], emulator: DeskEmulator, slack: FakeSlack
) -> None:
    bot, home = served
    directory = home / "metrics"
    assert not (directory / "counter_1.db").exists()
    workers = children(bot.process.pid)
    assert len(workers) == 2

    sent = 12
    lazy = send_commands(bot, slack, sent, "")
    assert lazy  # at least each worker's first command found its cache cold
    assert not send_commands(bot, slack, 3, USER_TEXT)  # an unknown option, answered in the ack
    assert slack.wait_for(lambda _: all(slack.responses(name) for name in lazy), timeout=10)
    time.sleep(0.3)  # the last lazy listener records its Desk call just before its reply is posted

    text = scrape(bot)
    scraped = samples(text)
    # One auth.test in the parent (the boot check) and one in each worker's Bolt app: summed.
    assert total(scraped, "slack_api_calls_total", method="auth.test", outcome="ok") == 3
    assert total(scraped, "slack_requests_total", kind="command", action="list", outcome="ok") == sent
    assert total(scraped, "slack_requests_total", kind="command", action="unknown", outcome="ok") == 3
    assert total(scraped, "slack_ack_duration_seconds_count") == sent + 3
    desk_calls = len(emulator.calls)
    assert 1 <= desk_calls <= 2  # one per worker's cold cache at most
    assert total(scraped, "desk_api_requests_total", app="default", api="robot_get_language_list", outcome="ok") == (
        desk_calls
    )
    assert total(scraped, "desk_api_request_duration_seconds_count") == desk_calls
    lookups = total(scraped, "desk_cache_lookups_total", app="default", kind="languages")
    assert lookups >= sent and total(scraped, "desk_cache_lookups_total", result="miss") >= 1
    assert total(scraped, "desk_languages_bot_build_info", version=metrics.bot_version()) == 1
    assert USER_TEXT not in text and SANDBOX_CHANNEL_ID not in text and SANDBOX_USER_ID not in text
    for secret in (TOKEN, BOT_TOKEN, SIGNING_SECRET, SANDBOX_KEY):
        assert secret not in text

    # A worker killed outright: granian starts another; what the dead one counted is still counted.
    os.kill(workers[0], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (set(children(bot.process.pid)) - set(workers)):
        time.sleep(0.1)
    assert set(children(bot.process.pid)) - set(workers), "granian did not replace the killed worker"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        after = samples(scrape(bot))
        if total(after, "slack_api_calls_total", method="auth.test", outcome="ok") == 4:
            break  # the new worker's Bolt app has booted
        time.sleep(0.2)
    assert total(after, "slack_api_calls_total", method="auth.test", outcome="ok") == 4
    assert total(after, "slack_requests_total", kind="command") == sent + 3

    # The token rule over the real socket; a refusal is answered before anything is collected.
    no_token = requests.get(f"{bot.url}/metrics", timeout=5)
    wrong = requests.get(f"{bot.url}/metrics", headers={"Authorization": "Bearer nope"}, timeout=5)
    assert (no_token.status_code, wrong.status_code) == (401, 401)
    assert no_token.headers["WWW-Authenticate"].startswith("Bearer")

    # JSON logs: every line of stderr is one object; a command's lines carry its context, the
    # lazy listener's too (the Desk client logs there).
    bot.stop()
    err = (home / "stderr.log").read_text()
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    tagged = [line for line in lines if "slack_request_id" in line]
    assert tagged, "no log line carried a request id"
    assert all(
        line["user"] == SANDBOX_USER_ID and line["channel"] == SANDBOX_CHANNEL_ID
        and line["command"] == "/desk-languages" and line["app"] == "default"
        for line in tagged
    )
    assert any(line["logger"] == "bot.desk.client" for line in tagged)  # carried into a lazy thread
    assert len({line["slack_request_id"] for line in tagged}) >= sent
    for secret in (TOKEN, BOT_TOKEN, SIGNING_SECRET, SANDBOX_KEY):
        assert secret not in err


def environ(path: str = "/metrics", addr: str = "127.0.0.1", auth: str | None = None) -> dict[str, Any]:
    env: dict[str, Any] = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "REMOTE_ADDR": addr}
    if auth is not None:
        env["HTTP_AUTHORIZATION"] = auth
    return env


def call(endpoint: MetricsEndpoint, env: dict[str, Any]) -> tuple[int, bytes]:
    seen: list[str] = []
    body = b"".join(endpoint(env, lambda status, headers: seen.append(status)))
    return int(seen[0].split()[0]), body


@pytest.mark.parametrize(
    ("token", "public", "env", "status"),
    [
        (None, False, environ(addr="127.0.0.1"), 200),
        (None, False, environ(addr="::1"), 200),
        (None, False, environ(addr="::ffff:127.0.0.1"), 200),
        (None, False, environ(addr="203.0.113.9"), 404),  # as if there were no such route
        (None, False, environ(addr="10.1.2.3"), 404),  # a platform's router is not loopback
        (None, True, environ(addr="203.0.113.9"), 200),
        (TOKEN, False, environ(addr="127.0.0.1"), 401),  # a token binds loopback too
        (TOKEN, False, environ(addr="203.0.113.9", auth=f"Bearer {TOKEN}"), 200),
        (TOKEN, False, environ(addr="203.0.113.9", auth=f"Bearer {TOKEN}x"), 401),
        (TOKEN, True, environ(addr="203.0.113.9", auth=TOKEN), 401),
        (None, False, environ(path="/metrics/x"), 404),
        (None, False, {**environ(addr="127.0.0.1"), "HTTP_X_FORWARDED_FOR": "203.0.113.9"}, 404),
        (None, True, {**environ(addr="127.0.0.1"), "HTTP_X_FORWARDED_FOR": "203.0.113.9"}, 200),
    ],
)
def test_metrics_access_rules(token: str | None, public: bool, env: dict[str, Any], status: int) -> None:
    got, body = call(MetricsEndpoint(token, public=public), env)
    assert got == status
    assert (b"desk_languages_bot_build_info" in body) is (status == 200)


def test_metrics_on_the_http_edge_from_loopback(emulator: DeskEmulator) -> None:
    for bot in running_bot(emulator):
        before = total(samples(requests.get(f"{bot.url}/metrics", timeout=5).text), "slack_requests_total")
        assert bot.command("", secret="wrong-secret").status == 401
        bot.reply(bot.command("").name)
        response = requests.get(f"{bot.url}/metrics", timeout=5)
        assert response.status_code == 200
        scraped = samples(response.text)
        assert total(scraped, "slack_requests_total") == before + 2
        assert total(scraped, "slack_requests_total", kind="unknown", action="none", outcome="401") >= 1
        assert requests.post(f"{bot.url}/metrics", timeout=5).status_code == 405
        # A proxy on the same host relays the internet from loopback: what it forwards is not local.
        for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
            relayed = requests.get(f"{bot.url}/metrics", headers={header: "203.0.113.9"}, timeout=5)
            assert relayed.status_code == 404, header
            assert "desk_languages_bot" not in relayed.text


def test_socket_mode_serves_metrics_on_metrics_port(emulator: DeskEmulator) -> None:
    port = free_port()
    settings = make_settings(emulator, METRICS_PORT=str(port))
    server = start_metrics_server(MetricsEndpoint(None), settings)
    try:
        response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert response.status_code == 200 and "desk_languages_bot_build_info" in response.text
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 404
        relayed = requests.get(f"http://127.0.0.1:{port}/metrics", headers={"Forwarded": "for=203.0.113.9"}, timeout=5)
        assert relayed.status_code == 404
    finally:
        server.stop()


@pytest.mark.e2e
def test_a_killed_process_is_marked_dead_at_scrape(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead, alive = int(gone.stdout), os.getpid()
    for pid in (dead, alive):
        (tmp_path / f"gauge_livemin_{pid}.db").write_bytes(b"")
        (tmp_path / f"counter_{pid}.db").write_bytes(b"")
    mark_dead_workers(tmp_path)
    assert not (tmp_path / f"gauge_livemin_{dead}.db").exists()
    assert (tmp_path / f"gauge_livemin_{alive}.db").exists()
    assert (tmp_path / f"counter_{dead}.db").exists()  # its counts stay counted


@pytest.mark.parametrize(
    ("variable", "value"), [("LOG_FORMAT", "xml"), ("METRICS_PORT", "0"), ("METRICS_PUBLIC", "maybe")]
)
def test_monitoring_settings_are_checked(emulator: DeskEmulator, variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings({**desk_env(emulator), variable: value}, dotenv_path=None)
    assert error.value.variable == variable and "\n" not in str(error.value)


def test_the_metrics_token_is_a_secret(emulator: DeskEmulator) -> None:
    settings = make_settings(emulator, METRICS_TOKEN=TOKEN)
    assert TOKEN in settings.secrets() and TOKEN not in repr(settings)


@pytest.mark.e2e
def test_threads_recording_their_first_metric_at_once_make_them_once(tmp_path: Path) -> None:
    # A fresh process: metric objects are made on first use, and a second set would be refused
    # by the registry ("Duplicated timeseries"), as `python -m bot apps` once found with two apps.
    script = (
        "import threading\n"
        "from bot import metrics\n"
        "barrier = threading.Barrier(8)\n"
        "def one():\n"
        "    barrier.wait()\n"
        "    metrics.desk_cache_lookup('a', 'languages', 'miss')\n"
        "threads = [threading.Thread(target=one) for _ in range(8)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "print(metrics.exposition()[0].decode())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Exception" not in done.stderr
    assert total(samples(done.stdout), "desk_cache_lookups_total", app="a", result="miss") == 8
