"""The Desk client over real sockets against the embedded emulator: retries, limits, cache, stale."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qs

import pytest

from bot.boot import build_desk_client
from bot.desk import DeskClient, DeskError
from bot.desk.limiter import InProcessLimiter
from bot.sandbox.desk_emulator import SANDBOX_KEY, SANDBOX_SDKAPPID, DeskEmulator, Fault
from tests.support.environment import direct_client, make_settings


def test_success_and_the_request_is_exactly_as_documented(client: DeskClient, emulator: DeskEmulator) -> None:
    result = client.get_languages()
    assert [lang.tag for lang in result.languages] == ["en", "zh", "ja", "vi", "fil"]
    assert result.default is not None and result.default.tag == "en"
    assert result.languages[1].name == "Chinese"
    assert result.languages[4].name == "Filipino"
    assert not result.stale and not result.from_cache and result.request_id

    client.get_languages(refresh=True)
    time.sleep(REFRESH_GAP)
    client.get_languages(refresh=True)
    calls = emulator.calls
    assert all(call.outcome == 0 for call in calls)
    queries = [parse_qs(call.raw_query) for call in calls]
    for call, query in zip(calls, queries, strict=True):
        assert call.body == b"{}"
        assert query["sdkappid"] == [str(SANDBOX_SDKAPPID)]
        assert query["identifier"] == ["administrator"]
        assert query["contenttype"] == ["json"]
        assert 0 <= int(query["random"][0]) <= 2**32 - 1
        assert "%" not in call.raw_query  # the usersig travels unencoded
    assert len({q["random"][0] for q in queries}) == len(queries)  # a fresh random per attempt


def run_in_threads(target: Callable[[], None], count: int) -> None:
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


REFRESH_GAP = 1.05  # a refresh within a second of the last fetch shares it


def test_a_fresh_list_is_served_from_cache(client: DeskClient, emulator: DeskEmulator) -> None:
    first = client.get_languages()
    second = client.get_languages()
    assert len(emulator.calls) == 1
    assert second.from_cache and second.fingerprint == first.fingerprint
    assert client.peek() is not None and client.peek().from_cache  # type: ignore[union-attr]


def test_empty_tag_default_and_unknown_tags_render_sensibly(client: DeskClient, emulator: DeskEmulator) -> None:
    emulator.set_languages([("", 1), ("xx-unknown", 0), ("ja", 0)])
    result = client.get_languages()
    assert result.default is not None and result.default.tag == ""
    assert result.default.name == "Default language (no tag)"
    assert result.languages[1].name == "Unrecognised tag (xx-unknown)"


def test_rate_limited_code_backs_off_at_least_a_second_then_succeeds(
    client: DeskClient, emulator: DeskEmulator
) -> None:
    emulator.inject(Fault(code=-14))
    started = time.monotonic()
    result = client.get_languages()
    assert time.monotonic() - started >= 1.0
    assert [c.outcome for c in emulator.calls] == [-14, 0]
    assert not result.stale


@pytest.mark.parametrize("code", [70500, 141002, 60008])
def test_transient_codes_are_retried(client: DeskClient, emulator: DeskEmulator, code: int) -> None:
    emulator.inject(Fault(code=code))
    client.get_languages()
    assert [c.outcome for c in emulator.calls] == [code, 0]


def test_expired_usersig_is_reminted_once(client: DeskClient, emulator: DeskEmulator) -> None:
    emulator.inject(Fault(code=70001), times=2)
    with pytest.raises(DeskError) as caught:
        client.get_languages()
    assert caught.value.code == 70001
    sigs = [parse_qs(c.raw_query)["usersig"][0] for c in emulator.calls]
    assert len(sigs) == 2 and sigs[0] != sigs[1]  # re-signed, exactly once


def test_permanent_codes_fail_at_once_with_a_hint(client: DeskClient, emulator: DeskEmulator) -> None:
    emulator.inject(Fault(code=-50040, error_info="desk not enabled"))
    with pytest.raises(DeskError) as caught:
        client.get_languages()
    error = caught.value
    assert len(emulator.calls) == 1
    assert (error.code, error.meaning) == (-50040, "Desk is not enabled")
    assert "Enable Desk" in error.hint and "DESK_SDKAPPID" in error.hint
    assert "desk not enabled" in str(error)


def test_unknown_codes_keep_tencents_text(client: DeskClient, emulator: DeskEmulator) -> None:
    emulator.inject(Fault(code=99999, error_info="某个错误"))
    with pytest.raises(DeskError) as caught:
        client.get_languages()
    assert caught.value.code == 99999 and "某个错误" in str(caught.value)
    assert caught.value.hint


def test_lockout_code_pauses_calls_for_the_cool_down(client: DeskClient, emulator: DeskEmulator) -> None:
    emulator.inject(Fault(code=70050))
    with pytest.raises(DeskError):
        client.get_languages()
    with pytest.raises(DeskError) as caught:
        client.fetch()  # past the cache: the pause itself refuses the call
    assert caught.value.code == "cool-down"
    assert len(emulator.calls) == 1


def test_refreshes_share_a_recent_failure_instead_of_calling_again(
    client: DeskClient, emulator: DeskEmulator
) -> None:
    """During an outage a refresh storm must not start one hanging call after another."""
    emulator.inject(Fault(code=-50040), times=-1)
    for _ in range(5):
        with pytest.raises(DeskError):
            client.get_languages(refresh=True)
    assert len(emulator.calls) == 1


def test_a_hang_longer_than_the_timeout_fails_within_the_budget(emulator: DeskEmulator) -> None:
    client = build_desk_client(make_settings(emulator, DESK_TIMEOUT="0.5"))
    emulator.inject(Fault(hang=5), times=-1)
    started = time.monotonic()
    with pytest.raises(DeskError) as caught:
        client.get_languages()
    elapsed = time.monotonic() - started
    assert caught.value.code == "read-timeout"
    assert elapsed < 0.5 + 0.5 + 0.3  # DESK_TIMEOUT plus the retry budget, plus scheduling slack


def test_http_502_is_retried_and_then_reported(client: DeskClient, emulator: DeskEmulator) -> None:
    emulator.inject(Fault(http_status=502))
    assert not client.get_languages().stale
    assert [c.outcome for c in emulator.calls] == ["http-502", 0]
    emulator.inject(Fault(http_status=502), times=-1)
    with pytest.raises(DeskError) as caught:
        client.fetch()
    assert caught.value.code == "http-gateway"
    assert "502" in str(caught.value)


def test_truncated_json_is_retried_once_then_a_protocol_error(client: DeskClient, emulator: DeskEmulator) -> None:
    emulator.inject(Fault(truncated=True), times=-1)
    with pytest.raises(DeskError) as caught:
        client.get_languages()
    assert caught.value.code == "bad-response"
    assert [c.outcome for c in emulator.calls] == ["truncated", "truncated"]


def test_fifty_threads_on_a_cold_cache_make_one_upstream_call(client: DeskClient, emulator: DeskEmulator) -> None:
    emulator.inject(Fault(hang=0.3))  # keep the first call in flight while the others arrive
    barrier = threading.Barrier(50)
    results: list[object] = []

    def call() -> None:
        barrier.wait()
        results.append(client.get_languages())

    run_in_threads(call, 50)
    assert len(results) == 50 and len(emulator.calls) == 1
    assert len({r.fingerprint for r in results}) == 1  # type: ignore[attr-defined]


def test_a_failed_load_is_shared_by_its_waiters_not_repeated(client: DeskClient, emulator: DeskEmulator) -> None:
    emulator.inject(Fault(code=-50040, hang=0.3))
    errors: list[DeskError] = []

    def call() -> None:
        try:
            client.get_languages()
        except DeskError as error:
            errors.append(error)

    run_in_threads(call, 20)
    assert len(errors) == 20 and len(emulator.calls) == 1


def test_refresh_storm_never_exceeds_the_limit_at_desk(client: DeskClient, emulator: DeskEmulator) -> None:
    """100 refreshes from 10 threads over ~3 s: coalesced, and never more than 5 calls in any second."""

    def storm() -> None:
        for _ in range(10):
            client.get_languages(refresh=True)
            time.sleep(0.3)

    run_in_threads(storm, 10)
    assert emulator.max_calls_in_window(1.0) <= 5
    assert all(call.outcome == 0 for call in emulator.calls)


def test_uncached_calls_are_paced_by_the_limiter(client: DeskClient, emulator: DeskEmulator) -> None:
    """25 fetches that bypass the cache entirely, from 8 threads: the limiter alone keeps Desk under 5/s."""
    failures: list[DeskError] = []
    lock = threading.Lock()
    counter = iter(range(25))

    def worker() -> None:
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            try:
                client.fetch()
            except DeskError as error:
                failures.append(error)

    run_in_threads(worker, 8)
    assert emulator.max_calls_in_window(1.0) <= 5
    assert all(call.outcome == 0 for call in emulator.calls)  # never a -14
    assert {e.code for e in failures} <= {"local-rate-limit"}  # waits past the budget say so
    assert len(emulator.calls) + len(failures) == 25


def test_the_limiter_gives_a_hinted_error_past_its_bounded_wait() -> None:
    limiter = InProcessLimiter(1)
    assert limiter.acquire(timeout=0.1)
    started = time.monotonic()
    assert not limiter.acquire(timeout=0.2)
    assert time.monotonic() - started < 0.5


def test_stale_if_error_serves_the_last_good_list(client: DeskClient, emulator: DeskEmulator) -> None:
    good = client.get_languages()
    emulator.inject(Fault(code=-50040), times=-1)
    time.sleep(REFRESH_GAP)
    stale = client.get_languages(refresh=True)
    assert stale.stale and stale.fingerprint == good.fingerprint
    assert stale.error is not None and stale.error.code == -50040


def test_a_list_older_than_stale_max_is_not_served(emulator: DeskEmulator) -> None:
    client = build_desk_client(make_settings(emulator, DESK_STALE_MAX="0.5"))
    client.get_languages()
    emulator.inject(Fault(code=-50040), times=-1)
    time.sleep(REFRESH_GAP)
    with pytest.raises(DeskError):
        client.get_languages(refresh=True)


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_primary_domain_falls_over_to_the_backup(emulator: DeskEmulator) -> None:
    client = direct_client([f"http://127.0.0.1:{dead_port()}", emulator.base_url])
    assert len(client.get_languages().languages) == 5
    assert len(emulator.calls) == 1


@pytest.mark.usefixtures("debug_logging")
def test_no_secret_in_logs_or_errors_on_any_path(emulator: DeskEmulator, caplog: pytest.LogCaptureFixture) -> None:
    from bot.logs import configure_logging

    settings = make_settings(emulator, DESK_TIMEOUT="0.6")
    configure_logging("DEBUG", settings.secrets())
    caplog.set_level(logging.DEBUG)
    client = build_desk_client(settings)
    texts: list[str] = []
    client.get_languages()  # success
    emulator.inject(Fault(code=-14))
    client.fetch()  # retry path
    for fault in (Fault(code=70001), Fault(hang=2), Fault(http_status=502), Fault(code=-50040)):
        emulator.inject(fault, times=2)
        try:
            client.fetch()
        except DeskError as error:
            texts += [str(error), repr(error), error.hint]
    dead = direct_client([f"http://127.0.0.1:{dead_port()}"])
    with pytest.raises(DeskError) as caught:
        dead.fetch()  # urllib3 logs the URL of a refused connection
    texts += [str(caught.value), repr(caught.value)]
    logging.getLogger("urllib3.connectionpool").warning("Retrying url=/x?usersig=abcdef123&random=1")

    sent_sigs = {parse_qs(c.raw_query)["usersig"][0] for c in emulator.calls}
    assert sent_sigs
    everything = caplog.text + "\n".join(texts)
    for secret in [SANDBOX_KEY, *sent_sigs, "abcdef123"]:
        assert secret not in everything
    assert "usersig=<redacted>" in caplog.text  # the records were there, redacted
