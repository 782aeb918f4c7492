"""The embedded Desk emulator, driven over real loopback sockets with `requests`.

Each test talks HTTP to a live `DeskEmulator` (the `emulator` fixture, or one
built here with an injected clock), with UserSigs minted by our own code.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest
import requests

from bot.desk.errors import DeskError
from bot.desk.models import parse_body
from bot.sandbox.desk_emulator import (
    SAMPLE_LANGUAGES,
    SANDBOX_ADMINS,
    SANDBOX_KEY,
    SANDBOX_SDKAPPID,
    DeskEmulator,
    Fault,
    sandbox_identity,
)
from tests.support.clocks import Dial
from tests.support.emulator_http import control, error_code, query, sig
from tests.support.tiers import e2e_fixture

PATH = "/v4/openim_console_http_svc/robot_get_language_list"
OTHER_APP = 1400000002


def call(
    emu: DeskEmulator,
    raw_query: str | None = None,
    *,
    body: bytes = b"{}",
    path: str = PATH,
    method: str = "POST",
    timeout: float = 5.0,
) -> requests.Response:
    url = f"{emu.base_url}{path}?{query() if raw_query is None else raw_query}"
    return requests.request(method, url, data=body, timeout=timeout)


def outcomes(emu: DeskEmulator) -> list[int | str]:
    return [record.outcome for record in emu.calls]


def wait_for(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def call_ignoring_failure(emu: DeskEmulator, failures: list[BaseException] | None = None) -> None:
    """For a background thread: a call that the emulator may drop, kept out of pytest's way."""
    try:
        call(emu, timeout=10)
    except requests.RequestException as failure:
        if failures is not None:
            failures.append(failure)


@pytest.fixture
def clock() -> Dial[float]:
    return Dial(float(int(time.time())))


@e2e_fixture
def clocked(clock: Dial[float]) -> Iterator[DeskEmulator]:
    with DeskEmulator(clock=clock) as emu:
        yield emu


# --- success ------------------------------------------------------------------------------------


def test_success_body_has_the_documented_shape(emulator: DeskEmulator) -> None:
    response = call(emulator)

    assert error_code(response) == 0
    data = response.json()
    assert list(data) == ["ActionStatus", "ErrorInfo", "ErrorCode", "Languages", "RequestId"]
    assert data["ErrorInfo"] == ""
    assert data["Languages"] == [
        {"LanguageTag": tag, "IsDefault": flag} for tag, flag in SAMPLE_LANGUAGES
    ]
    parsed = parse_body(response.content, fetched_at=0.0)
    assert parsed.default is not None and parsed.default.tag == "en"
    assert len(parsed.languages) == 5


def test_every_answer_has_a_fresh_request_id(emulator: DeskEmulator) -> None:
    ids = {call(emulator).json()["RequestId"] for _ in range(3)}
    assert len(ids) == 3


def test_constants_and_base_url(emulator: DeskEmulator) -> None:
    assert SANDBOX_SDKAPPID == 1400000001
    assert SANDBOX_ADMINS == ("administrator",)
    assert emulator.base_url.startswith("http://127.0.0.1:")
    assert int(emulator.base_url.rsplit(":", 1)[1]) > 0


@pytest.mark.parametrize("random", ["0", "4294967295"])
def test_random_bounds_are_accepted(emulator: DeskEmulator, random: str) -> None:
    assert error_code(call(emulator, query(random=random))) == 0


def test_any_json_object_body_is_accepted(emulator: DeskEmulator) -> None:
    assert error_code(call(emulator, body=b'{"unused": 1}')) == 0


def test_keep_alive_connection_serves_several_calls(emulator: DeskEmulator) -> None:
    with requests.Session() as session:
        url = f"{emulator.base_url}{PATH}?{query()}"
        codes = [error_code(session.post(url, data=b"{}", timeout=5)) for _ in range(3)]
    assert codes == [0, 0, 0]


# --- validation, in Tencent's order ---------------------------------------------------------------

VALIDATION_CASES = [
    # (id, query overrides, body, path, method, expected ErrorCode)
    ("wrong path", {}, b"{}", PATH + "x", "POST", 60009),
    ("path in other case", {}, b"{}", PATH.upper(), "POST", 60009),
    ("GET", {}, b"{}", PATH, "GET", 60009),
    ("PUT", {}, b"{}", PATH, "PUT", 60009),
    ("sdkappid missing", {"sdkappid": None}, b"{}", PATH, "POST", 60012),
    ("sdkappid empty", {"sdkappid": ""}, b"{}", PATH, "POST", 60012),
    ("sdkappid not a number", {"sdkappid": "14x"}, b"{}", PATH, "POST", 70020),
    ("sdkappid not ours", {"sdkappid": str(OTHER_APP)}, b"{}", PATH, "POST", 70020),
    ("sdkappid huge", {"sdkappid": "9" * 5000}, b"{}", PATH, "POST", 70020),
    ("identifier missing", {"identifier": None}, b"{}", PATH, "POST", -7),
    ("identifier empty", {"identifier": ""}, b"{}", PATH, "POST", -7),
    ("identifier invalid", {"identifier": "admin%20x"}, b"{}", PATH, "POST", -7),
    ("identifier too long", {"identifier": "a" * 33}, b"{}", PATH, "POST", -7),
    ("usersig missing", {"usersig": None}, b"{}", PATH, "POST", 70002),
    ("usersig empty", {"usersig": ""}, b"{}", PATH, "POST", 70002),
    ("usersig garbage", {"usersig": "not-a-usersig"}, b"{}", PATH, "POST", 70003),
    ("usersig of another app", {"usersig": sig(sdkappid=OTHER_APP)}, b"{}", PATH, "POST", 70014),
    ("usersig of another user", {"usersig": sig("someone")}, b"{}", PATH, "POST", 70013),
    ("usersig with wrong key", {"usersig": sig(key="another-key")}, b"{}", PATH, "POST", 70009),
    ("not an admin", {"identifier": "alice", "usersig": sig("alice")}, b"{}", PATH, "POST", -20),
    ("random missing", {"random": None}, b"{}", PATH, "POST", -7),
    ("random not a number", {"random": "abc"}, b"{}", PATH, "POST", -7),
    ("random negative", {"random": "-1"}, b"{}", PATH, "POST", -7),
    ("random over 32 bits", {"random": "4294967296"}, b"{}", PATH, "POST", -7),
    ("random huge", {"random": "9" * 5000}, b"{}", PATH, "POST", -7),
    ("random not ASCII digits", {"random": "%D9%A1"}, b"{}", PATH, "POST", -7),
    ("contenttype missing", {"contenttype": None}, b"{}", PATH, "POST", -7),
    ("contenttype not json", {"contenttype": "JSON"}, b"{}", PATH, "POST", -7),
    ("empty body", {}, b"", PATH, "POST", -7),
    ("body not JSON", {}, b"{", PATH, "POST", -7),
    ("body a JSON array", {}, b"[]", PATH, "POST", -7),
]


@pytest.mark.parametrize(
    ("overrides", "body", "path", "method", "expected"),
    [case[1:] for case in VALIDATION_CASES],
    ids=[case[0] for case in VALIDATION_CASES],
)
def test_validation_error_codes(
    emulator: DeskEmulator,
    overrides: dict[str, str | None],
    body: bytes,
    path: str,
    method: str,
    expected: int,
) -> None:
    response = call(emulator, query(**overrides), body=body, path=path, method=method)

    assert error_code(response) == expected
    assert response.json()["ErrorInfo"]  # a short English reason
    assert "Languages" not in response.json()
    assert outcomes(emulator) == [expected]


def test_chunked_body_is_read(emulator: DeskEmulator) -> None:
    url = f"{emulator.base_url}{PATH}?{query()}"
    response = requests.post(url, data=iter([b"{", b"}"]), timeout=5)  # a generator is sent chunked
    assert error_code(response) == 0
    assert emulator.calls[0].body == b"{}"


def test_unreadable_body_is_60002(emulator: DeskEmulator) -> None:
    host, port = emulator.base_url.removeprefix("http://").split(":")
    request = f"POST {PATH}?{query()} HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n{{}}"
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(request.encode())
        reply = b""
        while chunk := connection.recv(4096):  # the emulator closes the connection
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["ErrorCode"] == 60002
    assert outcomes(emulator) == [60002]


def test_checks_run_in_order(emulator: DeskEmulator) -> None:
    everything_wrong = query(sdkappid="x", identifier=None, usersig=None, random=None)
    assert error_code(call(emulator, everything_wrong, body=b"")) == 70020
    no_sig_no_random = query(usersig=None, random=None)
    assert error_code(call(emulator, no_sig_no_random, body=b"")) == 70002
    not_admin_no_random = query(identifier="alice", usersig=sig("alice"), random=None)
    assert error_code(call(emulator, not_admin_no_random)) == -20


def test_percent_encoded_usersig_cannot_be_parsed(emulator: DeskEmulator) -> None:
    # A sig whose base64 held a '+' has a '*', which URL encoders turn into %2A.
    starred = next(s for s in (sig(expire=86400 + n) for n in range(200)) if "*" in s)
    encoded = quote(starred, safe="")
    assert "%2A" in encoded

    assert error_code(call(emulator, query(usersig=encoded))) == 70003
    assert error_code(call(emulator, query(usersig=starred))) == 0


def test_expired_usersig(clock: Dial[float], clocked: DeskEmulator) -> None:
    issued = clock.value
    clock.value = issued + 86400 + 1

    assert error_code(call(clocked, query(usersig=sig(now=issued, expire=86400)))) == 70001
    assert error_code(call(clocked, query(usersig=sig(now=clock.value)))) == 0


@pytest.mark.e2e
def test_custom_app_key_and_admins() -> None:
    with DeskEmulator(sdkappid=OTHER_APP, key="k", admins=("ops",)) as emu:
        good = query(sdkappid=str(OTHER_APP), identifier="ops", usersig=sig("ops", sdkappid=OTHER_APP, key="k"))
        assert error_code(call(emu, good)) == 0
        assert error_code(call(emu)) == 70020


def test_calls_record_the_raw_request(emulator: DeskEmulator) -> None:
    raw = query(random="7")
    before = time.time()
    call(emulator, raw, body=b'{"x": 1}')
    call(emulator, raw, path="/elsewhere")

    first, second = emulator.calls
    assert first.raw_query == raw
    assert first.body == b'{"x": 1}'
    assert first.outcome == 0
    assert before <= first.at <= time.time()
    assert second.outcome == 60009
    emulator.reset_calls()
    assert emulator.calls == []


# --- rate limit -------------------------------------------------------------------------------------


def test_sixth_call_in_a_second_is_rate_limited(clock: Dial[float], clocked: DeskEmulator) -> None:
    for _ in range(3):  # invalid calls take no place in the window
        call(clocked, body=b"")
    burst = [error_code(call(clocked)) for _ in range(6)]
    clock.value += 0.5
    half_a_second_later = error_code(call(clocked))
    clock.value += 0.5  # the first five leave the window; the rejected calls never entered it
    a_second_later = [error_code(call(clocked)) for _ in range(6)]

    assert burst == [0, 0, 0, 0, 0, -14]
    assert half_a_second_later == -14
    assert a_second_later == [0, 0, 0, 0, 0, -14]
    assert outcomes(clocked).count(-14) == 3
    assert clocked.max_calls_in_window(1.0) == 10  # [t, t+1): 9 at t, 1 at t+0.5
    assert clocked.max_calls_in_window(0.25) == 9
    assert clocked.max_calls_in_window(2.0) == 16


def test_rate_limit_with_the_real_clock(emulator: DeskEmulator) -> None:
    codes = [error_code(call(emulator)) for _ in range(6)]
    assert codes == [0, 0, 0, 0, 0, -14]
    assert emulator.max_calls_in_window() == 6


@pytest.mark.e2e
def test_custom_rate_limit() -> None:
    with DeskEmulator(rate_limit=2, clock=Dial(time.time())) as emu:
        assert [error_code(call(emu)) for _ in range(3)] == [0, 0, -14]


def test_max_calls_in_window_uses_half_open_windows(clock: Dial[float], clocked: DeskEmulator) -> None:
    start = clock.value
    for offset in (0.0, 0.3, 0.9, 1.0, 1.2, 3.0):
        clock.value = start + offset
        call(clocked, path="/nowhere")

    assert clocked.max_calls_in_window(1.0) == 4  # 0.3, 0.9, 1.0, 1.2
    assert clocked.max_calls_in_window(0.05) == 1
    assert clocked.max_calls_in_window(10.0) == 6
    clocked.reset_calls()
    assert clocked.max_calls_in_window() == 0


# --- faults -----------------------------------------------------------------------------------------


def test_injected_code(emulator: DeskEmulator) -> None:
    emulator.inject(Fault(code=-50040, error_info="desk not enabled (test)"))
    emulator.inject(Fault(code=141002))

    first = call(emulator)
    assert error_code(first) == -50040
    assert first.json()["ErrorInfo"] == "desk not enabled (test)"
    assert error_code(call(emulator)) == 141002
    assert error_code(call(emulator)) == 0
    assert outcomes(emulator) == [-50040, 141002, 0]


def test_faults_preempt_validation(emulator: DeskEmulator) -> None:
    emulator.inject(Fault(code=70050))
    assert error_code(call(emulator, query(usersig=None))) == 70050


def test_faults_are_a_fifo_with_counts(emulator: DeskEmulator) -> None:
    emulator.inject(Fault(code=60018), times=2)
    emulator.inject(Fault(http_status=503))
    emulator.inject(Fault(truncated=True), times=0)  # no-op

    statuses = [call(emulator).status_code for _ in range(4)]

    assert statuses == [200, 200, 503, 200]
    assert outcomes(emulator) == [60018, 60018, "http-503", 0]


def test_fault_until_cleared(emulator: DeskEmulator) -> None:
    emulator.inject(Fault(code=70500), times=-1)
    assert [error_code(call(emulator)) for _ in range(4)] == [70500] * 4
    emulator.clear_faults()
    assert error_code(call(emulator)) == 0


def test_injected_code_zero_is_an_odd_fail_envelope(emulator: DeskEmulator) -> None:
    emulator.inject(Fault(code=0))
    data = call(emulator).json()
    assert data["ActionStatus"] == "FAIL"
    assert data["ErrorCode"] == 0


def test_hang_outlasts_the_client_timeout(emulator: DeskEmulator) -> None:
    emulator.inject(Fault(hang=2.0))
    started = time.monotonic()

    with pytest.raises(requests.exceptions.ReadTimeout):
        call(emulator, timeout=0.2)

    assert time.monotonic() - started < 1.5
    assert outcomes(emulator) == ["hang"]


def test_hang_alone_then_answers_normally(emulator: DeskEmulator) -> None:
    emulator.inject(Fault(hang=0.3))
    started = time.monotonic()

    response = call(emulator)

    assert time.monotonic() - started >= 0.3
    assert error_code(response) == 0
    assert outcomes(emulator) == ["hang"]


def test_hang_then_code(emulator: DeskEmulator) -> None:
    emulator.inject(Fault(hang=0.1, code=-50003))
    assert error_code(call(emulator)) == -50003


def test_a_hang_does_not_block_other_calls(emulator: DeskEmulator) -> None:
    emulator.inject(Fault(hang=1.5))
    hung = threading.Thread(target=call_ignoring_failure, args=(emulator,), daemon=True)
    hung.start()
    wait_for(lambda: len(emulator.calls) == 1)

    started = time.monotonic()
    assert error_code(call(emulator)) == 0
    assert time.monotonic() - started < 0.5


def test_http_502(emulator: DeskEmulator) -> None:
    emulator.inject(Fault(http_status=502))

    response = call(emulator)

    assert response.status_code == 502
    assert response.headers["Content-Type"] == "text/html"
    assert "502 Bad Gateway" in response.text
    with pytest.raises(ValueError):
        response.json()
    assert outcomes(emulator) == ["http-502"]


def test_truncated_body_is_not_json(emulator: DeskEmulator) -> None:
    emulator.inject(Fault(truncated=True))

    response = call(emulator)

    assert response.status_code == 200
    assert response.text.startswith('{"ActionStatus": "OK"')
    with pytest.raises(ValueError):
        json.loads(response.content)
    with pytest.raises(DeskError) as failure:
        parse_body(response.content, fetched_at=0.0)
    assert failure.value.code == "bad-response"
    assert outcomes(emulator) == ["truncated"]


@pytest.mark.parametrize(
    "fields",
    [{"hang": -1}, {"hang": "1"}, {"http_status": 99}, {"http_status": 204}, {"code": "7"}, {"truncated": 1}],
)
def test_invalid_faults_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Fault(**fields)  # type: ignore[arg-type]


# --- languages --------------------------------------------------------------------------------------


def test_set_languages_pairs_dicts_and_missing(emulator: DeskEmulator) -> None:
    emulator.set_languages([("", 1), ("id", 0)])
    assert call(emulator).json()["Languages"] == [
        {"LanguageTag": "", "IsDefault": 1},
        {"LanguageTag": "id", "IsDefault": 0},
    ]
    odd = [{"LanguageTag": None}, {"IsDefault": "1", "Extra": True}]
    emulator.set_languages(odd)
    assert call(emulator).json()["Languages"] == odd
    emulator.set_languages(None)
    assert "Languages" not in call(emulator).json()
    emulator.set_languages([])
    assert call(emulator).json()["Languages"] == []


# --- the control API ----------------------------------------------------------------------------------


def test_control_faults(emulator: DeskEmulator) -> None:
    assert control(emulator, "POST", "faults", {"code": -50040, "times": 2}).json() == {"ok": True}
    assert control(emulator, "POST", "faults", {"http_status": 502}).status_code == 200
    assert [call(emulator).status_code for _ in range(3)] == [200, 200, 502]

    control(emulator, "POST", "faults", {"code": 141002, "error_info": "busy", "times": -1})
    assert error_code(call(emulator)) == 141002
    assert control(emulator, "DELETE", "faults").status_code == 200
    assert error_code(call(emulator)) == 0
    assert outcomes(emulator) == [-50040, -50040, "http-502", 141002, 0]


def test_control_hang_and_truncated(emulator: DeskEmulator) -> None:
    control(emulator, "POST", "faults", {"hang": 2.0})
    control(emulator, "POST", "faults", {"truncated": True})
    with pytest.raises(requests.exceptions.ReadTimeout):
        call(emulator, timeout=0.2)
    with pytest.raises(ValueError):
        call(emulator).json()


@pytest.mark.parametrize(
    "payload",
    [{"bogus": 1}, {"hang": "long"}, {"code": 1, "times": "2"}, {"times": -2}, [1, 2], "x"],
)
def test_control_refuses_bad_faults(emulator: DeskEmulator, payload: object) -> None:
    response = control(emulator, "POST", "faults", payload)
    assert response.status_code == 400
    assert response.json()["error"]
    assert error_code(call(emulator)) == 0  # nothing was queued


def test_control_refuses_invalid_json(emulator: DeskEmulator) -> None:
    response = requests.post(f"{emulator.base_url}/_emulator/faults", data=b"{", timeout=5)
    assert response.status_code == 400


def test_control_languages(emulator: DeskEmulator) -> None:
    assert control(emulator, "PUT", "languages", [["en", 1], ["ja", 0]]).status_code == 200
    assert call(emulator).json()["Languages"] == [
        {"LanguageTag": "en", "IsDefault": 1},
        {"LanguageTag": "ja", "IsDefault": 0},
    ]
    control(emulator, "PUT", "languages", [{"LanguageTag": "", "IsDefault": 1}])
    assert call(emulator).json()["Languages"] == [{"LanguageTag": "", "IsDefault": 1}]
    assert control(emulator, "GET", "languages").json() == [["", 1]]  # what a console user would see now


def test_control_calls(emulator: DeskEmulator) -> None:
    call(emulator)
    call(emulator, path="/v4/wrong")

    listed = control(emulator, "GET", "calls").json()

    assert [entry["outcome"] for entry in listed] == [0, 60009]
    assert all(isinstance(entry["at"], float) for entry in listed)
    assert set(listed[0]) == {"at", "outcome", "api", "body", "identifier"}
    assert [entry["api"] for entry in listed] == ["robot_get_language_list", ""]
    assert [entry["identifier"] for entry in listed] == ["administrator", "administrator"]  # who it came as
    assert listed[0]["body"] == "{}" and "usersig" not in json.dumps(listed).lower()
    assert control(emulator, "DELETE", "calls").status_code == 200
    assert control(emulator, "GET", "calls").json() == []
    assert emulator.calls == []  # control requests are never recorded


def test_control_unknown_paths_and_methods(emulator: DeskEmulator) -> None:
    assert control(emulator, "GET", "nothing").status_code == 404
    assert control(emulator, "GET", "faults").status_code == 405
    assert control(emulator, "POST", "calls").status_code == 405


# --- lifecycle and hygiene ------------------------------------------------------------------------


@pytest.mark.e2e
def test_stop_returns_fast_during_a_hang() -> None:
    emu = DeskEmulator().start()
    emu.inject(Fault(hang=30))
    failures: list[BaseException] = []
    client = threading.Thread(target=call_ignoring_failure, args=(emu, failures), daemon=True)
    client.start()
    wait_for(lambda: len(emu.calls) == 1)

    started = time.monotonic()
    emu.stop()

    assert time.monotonic() - started < 1.0
    client.join(timeout=2)
    assert not client.is_alive()
    assert len(failures) == 1  # the connection was dropped, not answered
    emu.stop()  # idempotent


@pytest.mark.e2e
def test_stop_closes_idle_keep_alive_connections() -> None:
    emu = DeskEmulator().start()
    session = requests.Session()
    session.post(f"{emu.base_url}{PATH}?{query()}", data=b"{}", timeout=5)

    started = time.monotonic()
    emu.stop()

    assert time.monotonic() - started < 1.0
    with pytest.raises(requests.ConnectionError):
        session.post(f"{emu.base_url}{PATH}?{query()}", data=b"{}", timeout=1)
    session.close()


@pytest.mark.e2e
def test_cannot_start_twice() -> None:
    emu = DeskEmulator()
    with pytest.raises(RuntimeError):
        _ = emu.base_url
    with emu, pytest.raises(RuntimeError):
        emu.start()


def test_nothing_is_printed_or_logged(
    emulator: DeskEmulator, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    secret_sig = sig()
    raw = query(usersig=secret_sig)
    call(emulator, raw)
    call(emulator, raw, body=b"")
    call(emulator, raw, path="/nope")
    emulator.inject(Fault(hang=0.3))
    with pytest.raises(requests.exceptions.ReadTimeout):
        call(emulator, raw, timeout=0.05)
    time.sleep(0.4)  # the emulator now answers a client that has gone
    emulator.inject(Fault(http_status=502))
    call(emulator, raw)

    captured = capfd.readouterr()
    assert captured.out == ""
    assert captured.err == ""
    assert not [record for record in caplog.records if record.name.startswith("bot.sandbox.desk_emulator")]


@pytest.mark.e2e
def test_cli_sandbox_serves_another_sample_as_another_app() -> None:
    """`--app-index 2`: the third emulated app's own SDKAppID and key; `--sample` its starting data."""
    sdkappid, key = sandbox_identity(2)
    assert (sdkappid, key) != (SANDBOX_SDKAPPID, SANDBOX_KEY)
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "sandbox", "--app-index", "2", "--sample", "staging"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert f"SDKAppID {sdkappid}" in line
        base_url = line.split()[-1]
        raw = query(sdkappid=str(sdkappid), usersig=sig(sdkappid=sdkappid, key=key))
        assert error_code(requests.post(f"{base_url}{PATH}?{raw}", data=b"{}", timeout=5)) == 0
        assert error_code(requests.post(f"{base_url}{PATH}?{query()}", data=b"{}", timeout=5)) != 0  # another app
        wrong_key = query(sdkappid=str(sdkappid), usersig=sig(sdkappid=sdkappid))
        assert error_code(requests.post(f"{base_url}{PATH}?{wrong_key}", data=b"{}", timeout=5)) != 0
        assert requests.get(f"{base_url}/_emulator/languages", timeout=5).json() == [["", 1], ["en", 0], ["ja", 0]]
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0


@pytest.mark.e2e
def test_cli_sandbox_accepts_another_admin_and_says_which_one_called() -> None:
    """`--admin change_control`: a second client of the app with its own DESK_IDENTIFIER is let in,
    and the recorded calls tell the two apart; an identifier not named stays refused (-20)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "sandbox", "--admin", "change_control"], stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().split()[-1]
        for identifier in ("administrator", "change_control"):
            raw = query(identifier=identifier, usersig=sig(identifier))
            assert error_code(requests.post(f"{base_url}{PATH}?{raw}", data=b"{}", timeout=5)) == 0
        stranger = query(identifier="someone_else", usersig=sig("someone_else"))
        assert error_code(requests.post(f"{base_url}{PATH}?{stranger}", data=b"{}", timeout=5)) == -20
        calls = requests.get(f"{base_url}/_emulator/calls", timeout=5).json()
        assert [c["identifier"] for c in calls] == ["administrator", "change_control", "someone_else"]
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0


@pytest.mark.e2e
def test_serve_forever_cli_runs_in_the_foreground() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "from bot.sandbox.desk_emulator import serve_forever_cli; serve_forever_cli(0)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        base_url = line.split()[-1]
        assert base_url.startswith("http://127.0.0.1:")
        response = requests.post(f"{base_url}{PATH}?{query()}", data=b"{}", timeout=5)
        assert error_code(response) == 0
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0
