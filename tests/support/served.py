"""`python -m bot …` in a subprocess, as a platform runs it: start, wait for /healthz, SIGTERM;
and the environment of the workers the multi-process tests start.

Every process binds and calls loopback only, and runs with an environment stripped of the
developer's credentials (and in an empty directory, so no `.env` is read).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from bot.sandbox.desk_emulator import SANDBOX_KEY, SANDBOX_SDKAPPID, DeskEmulator
from bot.sandbox.slack_emulator import FakeSlack
from tests.support.slack_harness import BOT_TOKEN, SIGNING_SECRET

BOOT_TIMEOUT = 20.0  # seconds for gunicorn to answer /healthz on a slow, busy machine
BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV", "SYSTEMROOT", "TMPDIR")


def clean_env(**env: str) -> dict[str, str]:
    """The process environment without any credential of the developer's, plus `env`."""
    base = {name: os.environ[name] for name in BASE_ENV if name in os.environ}
    return {**base, "PYTHONUNBUFFERED": "1", **env}


ROOT = Path(__file__).resolve().parent.parent.parent  # the checkout: the cwd and PYTHONPATH of workers


def child_env(database_url: str, fake: FakeSlack, emu: DeskEmulator, **extra: str) -> dict[str, str]:
    """A worker's environment (`python -m bot digest|watch …`, tests' workers): this one's without
    DESK_/SLACK_/DIGEST_/DATABASE_ settings, pointing at `emu`, `fake` and `database_url`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DESK_", "SLACK_", "DIGEST_", "DATABASE_"))}
    env.update(
        DESK_SDKAPPID=str(SANDBOX_SDKAPPID),
        DESK_SECRET_KEY=SANDBOX_KEY,
        DESK_API_URL=emu.base_url,
        DESK_RATE_LIMIT="1000",
        SLACK_BOT_TOKEN=fake.token,
        SLACK_API_URL=fake.api_url,
        DATABASE_URL=database_url,
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


def run_bot(*args: str, cwd: Path, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def start_bot(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def assert_one_line_config_error(result: subprocess.CompletedProcess[str], variable: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"configuration error: {variable}: ")
    assert "Traceback" not in result.stderr
    for secret in (BOT_TOKEN, SIGNING_SECRET, SANDBOX_KEY):
        assert secret not in result.stderr + result.stdout


class Served:
    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url

    def wait_until_healthy(self) -> requests.Response:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                _, err = self.process.communicate()
                pytest.fail(f"python -m bot serve exited with {self.process.returncode}:\n{err}")
            try:
                return requests.get(f"{self.url}/healthz", timeout=1)
            except requests.RequestException:  # refused while booting, or slow on a busy machine
                time.sleep(0.05)
        pytest.fail(f"python -m bot serve did not answer /healthz within {BOOT_TIMEOUT:.0f} s")

    def stop(self) -> tuple[int, str]:
        """SIGTERM, as a platform sends it; the exit code and everything written to stderr."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _, err = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return self.process.returncode, err
