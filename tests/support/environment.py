"""What many tests share: settings pointing at a Desk emulator, and finding (or skipping) services.

Under CI=true a missing service fails the run instead of skipping: CI must run every test.
"""

from __future__ import annotations

import glob
import os
import shutil
from typing import Any

import pytest

from bot.config import Settings, load_settings
from bot.desk import DeskClient, InProcessCache, InProcessLimiter, UserSigSource
from bot.sandbox.desk_emulator import SANDBOX_KEY, SANDBOX_SDKAPPID, DeskEmulator

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing_service(what: str) -> None:
    """Skip locally, fail in CI: CI must run every test."""
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true (.ci/run installs it)")
    pytest.skip(f"{what} is not available")


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


def direct_client(base_urls: list[str]) -> DeskClient:
    """A DeskClient built by hand rather than from settings: several base URLs, in-process state."""
    return DeskClient(
        sdkappid=SANDBOX_SDKAPPID,
        identifier="administrator",
        usersig=UserSigSource(sdkappid=SANDBOX_SDKAPPID, identifier="administrator", key=SANDBOX_KEY),
        base_urls=base_urls,
        limiter=InProcessLimiter(5),
        cache=InProcessCache(ttl=60, stale_max=600),
    )


def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        missing_service("redis-server (apt-get install redis-server)")
    assert binary is not None
    return binary


PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin", *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True))


def pg_tool(name: str) -> str | None:
    for folder in PG_BIN_DIRS:
        path = os.path.join(folder, name)
        if os.access(path, os.X_OK):
            return path
    return shutil.which(name)


BOTH_DATABASES = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
