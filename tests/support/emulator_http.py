"""Raw HTTP to the Desk emulator, as Desk's callers send it: query strings with UserSigs minted by
our own code, the envelope's error code, and the emulator's control API (tests/test_sandbox*.py)."""

from __future__ import annotations

import json
import time
import uuid

import requests

from bot.desk.usersig import mint_usersig
from bot.sandbox.desk_emulator import SANDBOX_KEY, SANDBOX_SDKAPPID, DeskEmulator


def sig(
    identifier: str = "administrator",
    *,
    sdkappid: int = SANDBOX_SDKAPPID,
    key: str = SANDBOX_KEY,
    now: float | None = None,
    expire: int = 86400,
) -> str:
    issued = int(time.time() if now is None else now)
    return mint_usersig(sdkappid, key, identifier, now=issued, expire=expire)


def query(**overrides: str | None) -> str:
    """A raw query string, values inserted exactly as given; None leaves a parameter out."""
    params: dict[str, str | None] = {
        "sdkappid": str(SANDBOX_SDKAPPID),
        "identifier": "administrator",
        "usersig": sig(),
        "random": "12345",
        "contenttype": "json",
    }
    params.update(overrides)
    return "&".join(f"{name}={value}" for name, value in params.items() if value is not None)


def error_code(response: requests.Response) -> int:
    """The ErrorCode of a Desk envelope, checking the envelope's shape on the way."""
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    data = response.json()
    assert data["ActionStatus"] == ("OK" if data["ErrorCode"] == 0 else "FAIL")
    assert isinstance(data["ErrorInfo"], str)
    assert uuid.UUID(data["RequestId"]).version == 4
    return int(data["ErrorCode"])


def control(emu: DeskEmulator, method: str, path: str, payload: object = None) -> requests.Response:
    data = None if payload is None else json.dumps(payload)
    return requests.request(method, f"{emu.base_url}/_emulator/{path}", data=data, timeout=5)
