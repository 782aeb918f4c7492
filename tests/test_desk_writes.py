"""Adding and deleting languages over real sockets against the emulator (docs/desk-api.md §8).

Neither write is idempotent: a write is repeated only when it certainly did not run, and when
its answer is lost the list is read again and the outcome says what it shows. Every write
counted here is a call that reached the emulator.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest
import redis

from bot.boot import build_desk_client
from bot.desk import DeskClient, DeskError, WriteAction, WriteOutcome, WriteStatus
from bot.desk.errors import CATALOGUE, RetryClass, TransportCode, desk_error, transport_error
from bot.desk.writes import write_may_have_run, write_may_repeat
from bot.sandbox.desk_emulator import SANDBOX_KEY, SANDBOX_SDKAPPID, DeskEmulator, Fault
from tests.support.concurrency import together
from tests.support.environment import direct_client, make_settings
from tests.support.services import free_port
from tests.support.tiers import e2e_fixture

ADD, DELETE, LIST = "robot_add_language", "robot_del_language", "robot_get_language_list"


@e2e_fixture
def staging() -> Iterator[DeskEmulator]:
    """An app with room for two more languages: "" (default), en, ja."""
    with DeskEmulator(sample="staging") as emu:
        yield emu


@pytest.fixture
def writer(staging: DeskEmulator) -> DeskClient:
    return build_desk_client(make_settings(staging))


pytestmark = pytest.mark.usefixtures("no_registered_connections")


def tags(outcome: WriteOutcome) -> list[str]:
    assert outcome.languages is not None
    return [lang.tag for lang in outcome.languages.languages]


# --- end to end ------------------------------------------------------------------------------------


def test_add_and_remove_change_the_list(writer: DeskClient, staging: DeskEmulator) -> None:
    before = writer.get_languages()
    added = writer.add_language("vi")
    assert (added.status, added.ambiguous, added.error) == (WriteStatus.APPLIED, False, None)
    assert tags(added) == ["", "en", "ja", "vi"] and not added.languages.from_cache  # type: ignore[union-attr]
    assert added.languages.fetched_at > before.fetched_at  # type: ignore[union-attr]
    assert writer.get_languages().has("vi") and writer.peek().has("vi")  # type: ignore[union-attr]
    removed = writer.remove_language("vi")
    assert removed.applied and tags(removed) == ["", "en", "ja"]
    assert added.describe() == "Vietnamese (vi) was added." and removed.describe() == "Vietnamese (vi) was deleted."
    assert [len(staging.calls_of(api)) for api in (ADD, DELETE, LIST)] == [1, 1, 3]  # one list read per write
    assert all(call.outcome == 0 for call in staging.calls)


def test_the_body_is_the_tag_exactly_as_given(writer: DeskClient, staging: DeskEmulator) -> None:
    writer.add_language("fil")
    (call,) = staging.calls_of(ADD)
    assert call.body == b'{"LanguageTag": "fil"}'
    query = parse_qs(call.raw_query)
    assert query["sdkappid"] == [str(SANDBOX_SDKAPPID)] and query["contenttype"] == ["json"]


# --- Desk refuses: one call, the code's hint, no list read ----------------------------------------


@pytest.mark.parametrize(
    ("prepare", "action", "tag", "code", "hint"),
    [
        (lambda emu: None, "add", "de", -50051, "id, zh, zh-TW, en, vi, ja, fil"),
        (lambda emu: emu.set_edition(language_limit=3), "add", "vi", -50052, "the default language included"),
        (lambda emu: emu.set_edition(multilingual=False), "add", "vi", -50042, "高级版"),
        (lambda emu: None, "remove", "", -50055, "Make another language the default"),
        (lambda emu: None, "remove", "ja", -50056, "knowledge base"),
    ],
    ids=["unsupported", "over-the-limit", "no-multilingual", "default", "has-questions"],
)
def test_a_refusal_is_not_applied_with_its_hint(
    writer: DeskClient, staging: DeskEmulator, prepare: object, action: str, tag: str, code: int, hint: str
) -> None:
    prepare(staging)  # type: ignore[operator]
    before = staging.languages
    outcome = writer.add_language(tag) if action == "add" else writer.remove_language(tag)
    assert outcome.status is WriteStatus.NOT_APPLIED and not outcome.ambiguous
    assert outcome.error is not None and outcome.error.code == code and hint in outcome.error.hint
    assert outcome.error.meaning in outcome.describe()
    assert outcome.languages is None  # nothing changed: the list is not read again
    assert staging.languages == before
    assert [call.api for call in staging.calls] == [ADD if action == "add" else DELETE]  # permanent: once


def test_the_default_of_the_default_sample_cannot_be_removed(emulator: DeskEmulator) -> None:
    outcome = build_desk_client(make_settings(emulator)).remove_language("en")
    assert outcome.error is not None and outcome.error.code == -50055
    assert emulator.languages[0] == ("en", 1)


# --- lost answers: never repeated, the list tells --------------------------------------------------


@pytest.fixture
def quick(staging: DeskEmulator) -> DeskClient:
    """A short DESK_TIMEOUT, so that a read would be retried after a read timeout: a write must not."""
    return build_desk_client(make_settings(staging, DESK_TIMEOUT="0.5"))


def test_a_read_timeout_after_the_write_ran_is_reported_applied(quick: DeskClient, staging: DeskEmulator) -> None:
    writer = quick
    staging.inject(Fault(late=3.0, api=ADD))  # takes effect, answers after the client's 0.5 s
    started = time.monotonic()
    outcome = writer.add_language("vi")
    assert time.monotonic() - started < 2.5
    assert (outcome.status, outcome.ambiguous) == (WriteStatus.APPLIED, True)
    assert outcome.error is not None and outcome.error.code == TransportCode.READ_TIMEOUT
    assert tags(outcome) == ["", "en", "ja", "vi"]
    assert "answer was lost (read-timeout), but the list read again shows Vietnamese (vi) was added" in (
        outcome.describe()
    )
    assert [call.api for call in staging.calls] == [ADD, LIST]  # exactly one write reached Desk


def test_a_read_timeout_before_the_write_ran_is_reported_not_seen(
    quick: DeskClient, staging: DeskEmulator
) -> None:
    writer = quick
    staging.inject(Fault(hang=3.0, code=141002, api=ADD))  # slow, and then fails: never applied
    outcome = writer.add_language("vi")
    assert (outcome.status, outcome.ambiguous) == (WriteStatus.NOT_SEEN, True)
    assert outcome.error is not None and outcome.error.code == TransportCode.READ_TIMEOUT
    assert "vi" not in tags(outcome) and "Desk may still apply it" in outcome.describe()
    assert [call.api for call in staging.calls] == [ADD, LIST]
    time.sleep(2.2)  # the hung call has now been answered: still exactly one write, never applied
    assert len(staging.calls_of(ADD)) == 1 and not any(tag == "vi" for tag, _ in staging.languages)


def test_a_write_desk_applies_after_the_read_again_is_not_seen_never_not_applied(
    quick: DeskClient, staging: DeskEmulator
) -> None:
    """The answer times out, the list read again does not show the write yet, and then Desk applies
    it: the outcome must not have said "not applied" (the audit keeps it, and watch names who)."""
    staging.inject(Fault(hang=3.0, api=ADD))  # slow, then applied
    outcome = quick.add_language("vi")
    assert (outcome.status, outcome.applied) == (WriteStatus.NOT_SEEN, False)
    assert "vi" not in tags(outcome)
    assert "does not show that Vietnamese (vi) was added. Desk may still apply it" in outcome.describe()
    deadline = time.monotonic() + 5
    while not any(tag == "vi" for tag, _ in staging.languages) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert any(tag == "vi" for tag, _ in staging.languages) and len(staging.calls_of(ADD)) == 1


def test_when_the_list_cannot_be_read_again_the_outcome_is_unknown(
    writer: DeskClient, staging: DeskEmulator
) -> None:
    staging.inject(Fault(late=3.0, api=ADD))
    staging.inject(Fault(code=60006, api=LIST), times=-1)
    outcome = writer.add_language("vi")
    assert (outcome.status, outcome.ambiguous, outcome.languages) == (WriteStatus.UNKNOWN, True, None)
    assert outcome.reread_error is not None and outcome.reread_error.code == 60006
    assert "unknown" in outcome.describe()
    assert len(staging.calls_of(ADD)) == 1


@pytest.mark.parametrize(
    ("fault", "error", "status"),
    [
        (Fault(drop=True, api=DELETE), TransportCode.CONNECTION_LOST, WriteStatus.APPLIED),
        (Fault(truncated=True, api=DELETE), TransportCode.BAD_RESPONSE, WriteStatus.APPLIED),
        (Fault(http_status=502, api=DELETE), TransportCode.HTTP_GATEWAY, WriteStatus.NOT_SEEN),
        (Fault(code=70500, api=DELETE), 70500, WriteStatus.NOT_SEEN),  # Desk's own internal error
    ],
    ids=["reset-after-sending", "truncated", "http-502", "transient-code"],
)
def test_other_ambiguous_failures_are_never_repeated(
    writer: DeskClient, staging: DeskEmulator, fault: Fault, error: object, status: WriteStatus
) -> None:
    staging.set_faq("ja", [])
    staging.inject(fault, times=-1)  # were it repeated, the next call would fail the same way
    outcome = writer.remove_language("ja")
    assert (outcome.status, outcome.ambiguous) == (status, True)
    assert outcome.error is not None and outcome.error.code == error
    assert ("ja" in tags(outcome)) is (status is WriteStatus.NOT_SEEN)
    assert len(staging.calls_of(DELETE)) == 1


# --- certainly not run: repeated within the budget -------------------------------------------------


@pytest.mark.parametrize("code", [-14, 60007, 60011, 60018, 60019])
def test_a_rate_limited_write_is_repeated(writer: DeskClient, staging: DeskEmulator, code: int) -> None:
    staging.inject(Fault(code=code, api=ADD))
    started = time.monotonic()
    outcome = writer.add_language("vi")
    assert time.monotonic() - started >= 1.0  # the rate-limit back-off
    assert outcome.applied and not outcome.ambiguous
    assert [call.outcome for call in staging.calls_of(ADD)] == [code, 0]


def test_an_expired_usersig_on_a_write_is_re_signed_and_repeated_once(
    writer: DeskClient, staging: DeskEmulator
) -> None:
    staging.inject(Fault(code=70001, api=ADD))
    assert writer.add_language("vi").applied
    calls = staging.calls_of(ADD)
    assert [call.outcome for call in calls] == [70001, 0]
    assert len({parse_qs(call.raw_query)["usersig"][0] for call in calls}) == 2


def test_a_write_to_an_unreachable_primary_goes_to_the_backup_domain(staging: DeskEmulator) -> None:
    client = direct_client([f"http://127.0.0.1:{free_port()}", staging.base_url])
    assert client.add_language("vi").applied  # refused connection: nothing sent, safe to send again
    assert len(staging.calls_of(ADD)) == 1


def test_a_write_nobody_could_receive_is_not_applied_without_a_list_read(staging: DeskEmulator) -> None:
    client = build_desk_client(make_settings(staging, DESK_API_URL=f"http://127.0.0.1:{free_port()}"))
    started = time.monotonic()
    outcome = client.add_language("vi")
    assert time.monotonic() - started < 2.5  # retried within the budget of DESK_TIMEOUT + 1 s
    assert (outcome.status, outcome.ambiguous, outcome.languages) == (WriteStatus.NOT_APPLIED, False, None)
    assert outcome.error is not None and outcome.error.code == TransportCode.CONNECTION_FAILED


def test_each_write_api_has_its_own_rate_limit(staging: DeskEmulator) -> None:
    """Five list reads fill the list's budget; the writes still go through at once."""
    client = build_desk_client(make_settings(staging))
    for _ in range(5):
        client.fetch()
    started = time.monotonic()
    assert client.add_language("vi").status is WriteStatus.APPLIED
    assert time.monotonic() - started > 0.5  # the list read after it waited for the list's budget …
    add_at = staging.calls_of(ADD)[0].at
    assert add_at - staging.calls_of(LIST)[4].at < 0.3  # … the write itself did not
    assert -14 not in {call.outcome for call in staging.calls}


def test_processes_share_each_write_apis_limit_through_redis(staging: DeskEmulator, redis_url: str) -> None:
    settings = make_settings(staging, REDIS_URL=redis_url, DESK_TIMEOUT="3")
    clients = [build_desk_client(settings) for _ in range(2)]
    outcomes = together([clients[index % 2].remove_language("vi").describe for index in range(12)])
    assert all(isinstance(outcome, str) for outcome in outcomes), outcomes
    assert len(staging.calls_of(DELETE)) == 12 and staging.max_calls_in_window(1.0, api=DELETE) <= 5
    assert -14 not in {call.outcome for call in staging.calls}
    admin = redis.Redis.from_url(redis_url)
    assert admin.exists(f"desk:rl:{SANDBOX_SDKAPPID}:{DELETE}", f"desk:rl:{SANDBOX_SDKAPPID}") == 2  # apart
    admin.close()


# --- the cache, in every process -------------------------------------------------------------------


def test_a_write_invalidates_the_list_of_every_process_sharing_redis(staging: DeskEmulator, redis_url: str) -> None:
    settings = make_settings(staging, REDIS_URL=redis_url)
    writer, reader = build_desk_client(settings), build_desk_client(settings)
    assert not reader.get_languages().has("vi")
    assert reader.get_languages().from_cache and len(staging.calls_of(LIST)) == 1
    assert writer.add_language("vi").applied
    seen = reader.get_languages()
    assert seen.has("vi")  # the reader's cached list is gone: it sees the change …
    assert len(staging.calls_of(LIST)) == 2  # … that the writer's read after the write fetched for all
    assert reader.get_languages(refresh=True).has("vi")


def test_a_write_whose_list_read_fails_leaves_no_fresh_list_behind(staging: DeskEmulator, redis_url: str) -> None:
    settings = make_settings(staging, REDIS_URL=redis_url)
    writer, reader = build_desk_client(settings), build_desk_client(settings)
    reader.get_languages()
    staging.inject(Fault(code=60006, api=LIST))
    assert writer.add_language("vi").applied  # Desk said yes; only the list read after it failed
    time.sleep(5.1)  # the failed read is shared for error_ttl (5 s), then …
    fresh = reader.get_languages()
    assert fresh.has("vi") and not fresh.from_cache  # … the reader fetches: the pre-write list is gone


def test_a_list_error_cached_before_the_write_does_not_hide_its_effect(
    writer: DeskClient, staging: DeskEmulator
) -> None:
    staging.inject(Fault(code=60006, api=LIST))
    with pytest.raises(DeskError):
        writer.get_languages()  # the failure is now shared for a few seconds …
    outcome = writer.add_language("vi")
    assert outcome.reread_error is None and "vi" in tags(outcome)  # … but not by the read after a write


def test_a_refusal_leaves_the_cached_list_alone(writer: DeskClient, staging: DeskEmulator) -> None:
    writer.get_languages()
    writer.add_language("de")
    assert writer.get_languages().from_cache and len(staging.calls_of(LIST)) == 1


# --- classification and hygiene --------------------------------------------------------------------


def test_every_catalogue_entry_is_classified() -> None:
    never_sent = {"connection-failed", "connect-timeout", "local-rate-limit", "cool-down"}
    for code, spec in CATALOGUE.items():
        error = transport_error(TransportCode(code)) if isinstance(code, str) else desk_error(code)
        if isinstance(code, str):
            assert write_may_have_run(error) is (code not in never_sent), code
            assert write_may_repeat(error) is (code in {"connection-failed", "connect-timeout"}), code
        else:
            assert write_may_have_run(error) is (spec.retry is RetryClass.TRANSIENT), code
            assert write_may_repeat(error) is (spec.retry in {RetryClass.RATE_LIMITED, RetryClass.RESIGN_ONCE})
        assert not (write_may_have_run(error) and write_may_repeat(error)), code  # never both
    assert write_may_have_run(desk_error(99999)) is False  # an unknown code: Desk refused


def test_outcomes_compare_by_what_happened() -> None:
    refused = WriteOutcome(WriteAction.ADD, "de", WriteStatus.NOT_APPLIED, desk_error(-50051))
    assert refused == WriteOutcome(WriteAction.ADD, "de", WriteStatus.NOT_APPLIED)
    assert WriteOutcome(WriteAction.REMOVE, "", WriteStatus.APPLIED).describe() == (
        "Default language (no tag) was deleted."
    )


@pytest.mark.usefixtures("debug_logging")
def test_no_secret_in_logs_or_outcomes(staging: DeskEmulator, caplog: pytest.LogCaptureFixture) -> None:
    from bot.logs import configure_logging

    settings = make_settings(staging)
    configure_logging("DEBUG", settings.secrets())
    caplog.set_level(logging.DEBUG)
    client = build_desk_client(settings)
    texts: list[str] = []
    for fault in (Fault(late=2.0, api=ADD), Fault(drop=True, api=ADD), Fault(code=-50051, api=ADD)):
        staging.inject(fault)
        outcome = client.add_language("vi")
        texts += [outcome.describe(), str(outcome.error), repr(outcome)]
    sigs = {parse_qs(call.raw_query)["usersig"][0] for call in staging.calls}
    assert sigs and "was lost" in caplog.text
    for secret in [SANDBOX_KEY, *sigs]:
        assert secret not in caplog.text + "\n".join(texts)


def test_a_reset_after_sending_is_connection_lost_and_a_read_retries_it(emulator: DeskEmulator) -> None:
    client = build_desk_client(make_settings(emulator))
    emulator.inject(Fault(drop=True, api=LIST))
    assert not client.get_languages().stale  # a read may be repeated: it was
    assert [call.outcome for call in emulator.calls] == ["dropped", 0]
    emulator.inject(Fault(drop=True, api=LIST), times=-1)
    with pytest.raises(DeskError) as caught:
        client.fetch()
    assert caught.value.code == TransportCode.CONNECTION_LOST
    dead = build_desk_client(make_settings(emulator, DESK_API_URL=f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(DeskError) as refused:
        dead.fetch()
    assert refused.value.code == TransportCode.CONNECTION_FAILED
