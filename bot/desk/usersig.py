"""UserSig v2 (Tencent's TLS Sig API v2): minting, verifying, and reusing a minted sig.

The algorithm (docs/desk-api.md §5): HMAC-SHA256 over four `TLS.*:value`
lines keyed with the UTF-8 bytes of the SecretKey, wrapped in a small JSON
document, zlib-compressed and base64-encoded with `+/=` swapped for `*-_` so
the result is URL-safe as it is. Clocks are injected so tests are deterministic.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from bot.logs import register_secrets

DEFAULT_EXPIRE = 180 * 86400  # Tencent's default validity: 180 days
_TO_URL = str.maketrans("+/=", "*-_")
_FROM_URL = str.maketrans("*-_", "+/=")

Clock = Callable[[], float]


def _digest(key: str, identifier: str, sdkappid: int, now: int, expire: int) -> str:
    content = (
        f"TLS.identifier:{identifier}\n"
        f"TLS.sdkappid:{sdkappid}\n"
        f"TLS.time:{now}\n"
        f"TLS.expire:{expire}\n"
    )
    mac = hmac.new(key.encode(), content.encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def mint_usersig(
    sdkappid: int, key: str, identifier: str, *, now: int, expire: int = DEFAULT_EXPIRE
) -> str:
    """Return a UserSig for `identifier`, issued at `now` (Unix seconds) and valid `expire` s."""
    document = {
        "TLS.ver": "2.0",
        "TLS.identifier": identifier,
        "TLS.sdkappid": sdkappid,
        "TLS.expire": expire,
        "TLS.time": now,
        "TLS.sig": _digest(key, identifier, sdkappid, now, expire),
    }
    packed = zlib.compress(json.dumps(document, separators=(",", ":")).encode())
    return base64.b64encode(packed).decode().translate(_TO_URL)


@dataclass(frozen=True)
class SigClaims:
    identifier: str
    sdkappid: int
    issued_at: int
    expire: int

    @property
    def expires_at(self) -> int:
        return self.issued_at + self.expire


class InvalidUserSig(ValueError):
    """The sig cannot be decoded, or does not verify. Messages never echo the sig itself."""


def verify_usersig(usersig: str, *, sdkappid: int, key: str, now: float) -> SigClaims:
    """Check `usersig` the way Tencent does; return its claims or raise `InvalidUserSig`.

    `InvalidUserSig.args[0]` is one of "malformed", "mismatch", "bad-signature", "expired".
    """
    try:
        packed = base64.b64decode(usersig.translate(_FROM_URL), validate=True)
        document = json.loads(zlib.decompress(packed))
        claims = SigClaims(
            identifier=str(document["TLS.identifier"]),
            sdkappid=int(document["TLS.sdkappid"]),
            issued_at=int(document["TLS.time"]),
            expire=int(document["TLS.expire"]),
        )
        signature = str(document["TLS.sig"])
    except (ValueError, TypeError, KeyError, zlib.error):
        raise InvalidUserSig("malformed") from None
    if claims.sdkappid != sdkappid:
        raise InvalidUserSig("mismatch")
    expected = _digest(key, claims.identifier, claims.sdkappid, claims.issued_at, claims.expire)
    if not hmac.compare_digest(expected, signature):
        raise InvalidUserSig("bad-signature")
    if now > claims.expires_at:
        raise InvalidUserSig("expired")
    return claims


class UserSigSource:
    """Hands out the UserSig to send, minting and reusing it as needed.

    With a key, a minted sig is reused until `renew_before` seconds before it
    expires, and `invalidate()` (after Desk answers 70001/70052) forces a new one.
    With only a pre-generated sig, that sig is always used.
    """

    def __init__(
        self,
        *,
        sdkappid: int,
        identifier: str,
        key: str | None = None,
        usersig: str | None = None,
        expire: int = 7 * 86400,
        renew_before: int = 3600,
        clock: Clock = time.time,
    ) -> None:
        if not key and not usersig:
            raise ValueError("a key or a pre-generated usersig is needed")
        register_secrets([value for value in (key, usersig) if value])
        self._sdkappid = sdkappid
        self._identifier = identifier
        self._key = key
        self._fixed = usersig
        self._expire = expire
        self._renew_before = min(renew_before, expire // 2)
        self._clock = clock
        self._lock = threading.Lock()
        self._current: tuple[str, int] | None = None  # (sig, expires_at)
        self._last_issued = 0

    @property
    def can_resign(self) -> bool:
        return self._key is not None

    def get(self) -> str:
        if self._key is None:
            assert self._fixed is not None
            return self._fixed
        now = int(self._clock())
        with self._lock:
            if self._current is None or now >= self._current[1] - self._renew_before:
                # After invalidate(), never hand out the rejected sig again: same second, same sig.
                now = max(now, self._last_issued + 1)
                self._last_issued = now
                sig = mint_usersig(self._sdkappid, self._key, self._identifier, now=now, expire=self._expire)
                register_secrets([sig])  # redacted from logs wherever it might turn up
                self._current = (sig, now + self._expire)
            return self._current[0]

    def invalidate(self) -> None:
        with self._lock:
            self._current = None
