"""UserSig v2: our minting and verifying, cross-checked against Tencent's own package."""

from __future__ import annotations

import base64
import json
import zlib
from unittest import mock

import pytest
import TLSSigAPIv2
from hypothesis import given
from hypothesis import strategies as st

from bot.desk.usersig import InvalidUserSig, UserSigSource, mint_usersig, verify_usersig

KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
APP = 1400000001
NOW = 1_760_000_000


def decode(sig: str) -> dict:
    raw = base64.b64decode(sig.replace("*", "+").replace("-", "/").replace("_", "="))
    return json.loads(zlib.decompress(raw))


def tencent_sig(identifier: str, now: int, expire: int = 86400) -> str:
    with mock.patch("time.time", return_value=now):
        return TLSSigAPIv2.TLSSigAPIv2(APP, KEY).gen_sig(identifier, expire)


def tencent_digest(identifier: str, now: int, expire: int) -> str:
    api = TLSSigAPIv2.TLSSigAPIv2(APP, KEY)
    return api._TLSSigAPIv2__hmacsha256(identifier, now, expire, None).decode()


@given(
    identifier=st.from_regex(r"[A-Za-z0-9_-]{1,32}", fullmatch=True),
    offset=st.integers(min_value=0, max_value=10**8),
    expire=st.integers(min_value=60, max_value=180 * 86400),
)
def test_tencent_sigs_verify_with_our_rules_and_ours_with_theirs(identifier: str, offset: int, expire: int) -> None:
    now = NOW + offset
    theirs = tencent_sig(identifier, now, expire)
    claims = verify_usersig(theirs, sdkappid=APP, key=KEY, now=now + 1)
    assert (claims.identifier, claims.sdkappid, claims.issued_at, claims.expire) == (identifier, APP, now, expire)

    ours = mint_usersig(APP, KEY, identifier, now=now, expire=expire)
    document = decode(ours)
    # Tencent's own HMAC over our claims gives our signature, and the documents match field for field.
    assert document["TLS.sig"] == tencent_digest(identifier, now, expire)
    assert document == decode(theirs)


def test_sig_alphabet_is_url_safe() -> None:
    sig = mint_usersig(APP, KEY, "administrator", now=NOW)
    assert set(sig) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789*-_")


@pytest.mark.parametrize(
    ("sig_kwargs", "verify_kwargs", "reason"),
    [
        ({}, {"sdkappid": APP + 1}, "mismatch"),
        ({}, {"key": KEY[::-1]}, "bad-signature"),
        ({"expire": 100}, {"now": NOW + 101}, "expired"),
    ],
)
def test_verify_rejects(sig_kwargs: dict, verify_kwargs: dict, reason: str) -> None:
    sig = mint_usersig(APP, KEY, "administrator", now=NOW, **{"expire": 86400, **sig_kwargs})
    args = {"sdkappid": APP, "key": KEY, "now": NOW + 1, **verify_kwargs}
    with pytest.raises(InvalidUserSig) as caught:
        verify_usersig(sig, **args)
    assert caught.value.args[0] == reason


@given(st.text(max_size=200))
def test_verify_garbage_is_malformed_never_a_crash(garbage: str) -> None:
    with pytest.raises(InvalidUserSig):
        verify_usersig(garbage, sdkappid=APP, key=KEY, now=NOW)


def test_source_reuses_a_sig_until_shortly_before_expiry_and_remints_on_invalidate() -> None:
    now = [NOW]
    source = UserSigSource(
        sdkappid=APP, identifier="administrator", key=KEY, expire=7200, renew_before=600, clock=lambda: now[0]
    )
    first = source.get()
    now[0] += 6000  # 1200 s left: still reused
    assert source.get() == first
    now[0] += 700  # 500 s left: inside the renewal margin
    second = source.get()
    assert second != first
    assert decode(second)["TLS.time"] == now[0]
    now[0] += 1
    source.invalidate()
    third = source.get()
    assert third != second
    assert verify_usersig(third, sdkappid=APP, key=KEY, now=now[0]).issued_at == now[0]


def test_a_pre_generated_sig_is_used_as_is_and_cannot_be_reminted() -> None:
    source = UserSigSource(sdkappid=APP, identifier="administrator", usersig="given-sig-value")
    assert source.get() == "given-sig-value"
    assert not source.can_resign
