"""Shared fixtures: the Desk emulator, settings pointing at it, and a client built from them.

Everything runs over real loopback sockets. Service fixtures (Redis, PostgreSQL)
start real servers on free ports; under CI=true a missing server fails the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from bot.config import Settings, load_settings
from bot.desk import DeskClient, build_desk_client
from bot.desk.sandbox import SANDBOX_KEY, SANDBOX_SDKAPPID, DeskEmulator

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing_service(what: str) -> None:
    """Skip locally, fail in CI: CI must run every test."""
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true (.ci/run installs it)")
    pytest.skip(f"{what} is not available")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read the developer's real credentials."""
    for name in list(os.environ):
        if name.startswith(("DESK_", "SLACK_", "DIGEST_", "REDIS_", "DATABASE_")):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def emulator() -> Iterator[DeskEmulator]:
    with DeskEmulator() as emu:
        yield emu


def desk_env(emu: DeskEmulator, **extra: Any) -> dict[str, str]:
    env = {
        "DESK_SDKAPPID": str(SANDBOX_SDKAPPID),
        "DESK_SECRET_KEY": SANDBOX_KEY,
        "DESK_API_URL": emu.base_url,
        "DESK_TIMEOUT": "1.0",
    }
    env.update({key: str(value) for key, value in extra.items()})
    return env


def make_settings(emu: DeskEmulator, **extra: Any) -> Settings:
    return load_settings(desk_env(emu, **extra), dotenv_path=None)


@pytest.fixture
def settings(emulator: DeskEmulator) -> Settings:
    return make_settings(emulator)


@pytest.fixture
def client(settings: Settings) -> DeskClient:
    return build_desk_client(settings)
