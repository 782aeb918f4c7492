"""Readiness: every language's FAQ count and settings, over real sockets against the emulator
(docs/desk-api.md §9), fetched concurrently under each API's own limit, cached like the list
(and shared through a real Redis), stale-if-error; and the tolerant parsers, with hypothesis."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.boot import build_desk_client
from bot.desk import DeskClient, DeskError
from bot.desk.errors import TransportCode, desk_error
from bot.desk.models import Language
from bot.desk.readiness import (
    FaqCount,
    Flag,
    ReadinessReport,
    RobotSettings,
    parse_faq_count,
    parse_robot_config,
)
from bot.sandbox.desk_emulator import DeskEmulator, Fault
from bot.sandbox.desk_samples import FaqQuestion, questions
from tests.support.concurrency import together
from tests.support.environment import make_settings

FAQ, CONFIG, LIST = "list_faq", "desc_robot_config", "robot_get_language_list"
OK = {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}
SAMPLE_SUMMARY = "3 of 5 languages ready; Vietnamese has the welcome card off, Filipino has no fallback message"


pytestmark = pytest.mark.usefixtures("no_registered_connections")


def flags(report: ReadinessReport) -> dict[str, tuple[Flag, ...]]:
    return {row.language.tag: row.flags for row in report.languages}


# --- the report -----------------------------------------------------------------------------------


def test_the_default_sample_shows_both_problems(client: DeskClient, emulator: DeskEmulator) -> None:
    report = client.readiness()
    assert report.summary() == SAMPLE_SUMMARY
    assert not report.ready and report.ready_count == 3 and not report.stale and not report.from_cache
    assert [row.language.tag for row in report.languages] == ["en", "zh", "ja", "vi", "fil"]
    assert flags(report)["vi"] == (Flag.NO_WELCOME_CARD,) and flags(report)["fil"] == (Flag.NO_FALLBACK,)
    english = report.languages[0]
    assert english.language.is_default and english.faq == FaqCount(12, 24)
    assert isinstance(english.config, RobotSettings) and english.config.direct_answering_reaches == "0.8"
    # One call per language to each API, with the documented bodies.
    assert len(emulator.calls_of(LIST)) == 1
    assert sorted(json.loads(call.body)["LanguageTag"] for call in emulator.calls_of(FAQ)) == sorted(
        ["en", "zh", "ja", "vi", "fil"]
    )
    vi_faq = next(call for call in emulator.calls_of(FAQ) if b'"vi"' in call.body)
    assert vi_faq.body == b'{"PageIndex": 1, "PageSize": 1, "Status": 4, "LanguageTag": "vi"}'
    assert sorted(call.body for call in emulator.calls_of(CONFIG))[0] == b'{"LanguageTag": "en"}'
    assert len(emulator.calls_of(CONFIG)) == 5 and all(call.outcome == 0 for call in emulator.calls)


@pytest.mark.e2e
def test_a_mixed_report_flags_each_problem() -> None:
    with DeskEmulator(
        languages=[("ja", 0), ("en", 1), ("vi", 0), ("id", 0), ("fil", 0), ("zh", 0), ("zh-TW", 0)],
        faq={
            "en": questions("en", 10),
            "ja": questions("ja", 5),  # exactly half: not under half
            "vi": [FaqQuestion("Câu hỏi cũ?", status=5)],  # only a disabled one
            "id": questions("id", 4),
            "fil": questions("fil", 9),
            "zh": questions("zh", 10),
            "zh-TW": questions("zh-TW", 10),
        },
        settings={
            "vi": {"WelcomeCardEnable": 1},  # on here (the default sample's is off)
            "fil": {"FallbackMsg": "   "},
            "zh": {"WelcomeCardEnable": "0"},
            "zh-TW": {"WelcomeCardQuestions": []},
        },
    ) as emu:
        report = build_desk_client(make_settings(emu)).readiness()
    assert [row.language.tag for row in report.languages] == ["en", "ja", "vi", "id", "fil", "zh", "zh-TW"]
    assert flags(report) == {
        "en": (),
        "ja": (),
        "vi": (Flag.NO_FAQ,),
        "id": (Flag.FEW_FAQ,),
        "fil": (Flag.NO_FALLBACK,),
        "zh": (Flag.NO_WELCOME_CARD,),
        "zh-TW": (Flag.NO_WELCOME_CARD,),
    }
    assert report.summary() == (
        "2 of 7 languages ready; Vietnamese has no FAQ questions, "
        "Indonesian has 4 FAQ questions, under half of the default language's 10, "
        "Filipino has no fallback message, Chinese has the welcome card off, "
        "Chinese (Taiwan) has an empty welcome card"
    )


@pytest.mark.e2e
def test_the_default_languages_empty_tag_is_sent_as_it_came() -> None:
    with DeskEmulator(sample="staging") as emu:
        report = build_desk_client(make_settings(emu)).readiness()
        bodies = {call.body for call in emu.calls_of(CONFIG)}
    assert b'{"LanguageTag": ""}' in bodies
    assert report.languages[0].language.tag == "" and report.languages[0].faq == FaqCount(4, 8)
    assert flags(report) == {"": (), "en": (), "ja": (Flag.FEW_FAQ, Flag.NO_WELCOME_CARD)}
    assert report.summary() == (
        "2 of 3 languages ready; Japanese has 1 FAQ questions, under half of the default language's 4 "
        "and has the welcome card off"
    )


@pytest.mark.e2e
def test_checks_run_concurrently_within_each_apis_limit() -> None:
    # Every supported tag, 7 languages (a larger package than the sample's): two rate windows of checks.
    seven = [("en", 1), ("zh", 0), ("zh-TW", 0), ("ja", 0), ("id", 0), ("vi", 0), ("fil", 0)]
    with DeskEmulator(languages=seven, faq={"zh-TW": questions("zh-TW", 8), "id": questions("id", 6)}) as emulator:
        client = build_desk_client(make_settings(emulator))
        client.get_languages()
        emulator.inject(Fault(late=0.25, api=FAQ), times=-1)  # every check takes a quarter second
        emulator.inject(Fault(late=0.25, api=CONFIG), times=-1)
        started = time.monotonic()
        report = client.readiness()
        elapsed = time.monotonic() - started
        faq_window, config_window = (emulator.max_calls_in_window(1.0, api=api) for api in (FAQ, CONFIG))
        both_at_once = emulator.max_calls_in_window(0.1)
    assert report.ready_count == 5
    # 14 calls one after another would take 3.5 s; at 5 per 1.25 s per API the last two of each wait.
    assert 1.1 <= elapsed < 2.3, elapsed
    assert faq_window == 5 and config_window == 5
    assert both_at_once >= 8  # both APIs at once, not one after the other


def test_one_failed_check_marks_only_its_language(client: DeskClient, emulator: DeskEmulator) -> None:
    emulator.inject(Fault(code=60006, api=CONFIG))  # permanent: not retried
    report = client.readiness()
    failed = [row for row in report.languages if not row.checked]
    assert len(failed) == 1
    (row,) = failed
    assert isinstance(row.config, DeskError) and row.config.code == 60006 and row.config.hint
    assert isinstance(row.faq, FaqCount) and not row.ready and row.errors == (row.config,)
    assert "could not be checked: the settings check failed (60006)" in report.summary()
    assert sum(other.checked for other in report.languages) == 4


# --- the cache -------------------------------------------------------------------------------------


def test_the_report_is_cached_and_peeked(client: DeskClient, emulator: DeskEmulator) -> None:
    assert client.peek_readiness() is None
    first = client.readiness()
    calls = len(emulator.calls)
    again = client.readiness()
    assert again.from_cache and again.summary() == first.summary() and len(emulator.calls) == calls
    peeked = client.peek_readiness()
    assert peeked is not None and peeked.from_cache and peeked == again
    time.sleep(1.05)
    assert not client.readiness(refresh=True).from_cache and len(emulator.calls) == calls + 11  # list too


def test_the_report_is_shared_by_processes_through_redis(emulator: DeskEmulator, redis_url: str) -> None:
    settings = make_settings(emulator, REDIS_URL=redis_url)
    first, second = build_desk_client(settings), build_desk_client(settings)
    report = first.readiness()
    calls = len(emulator.calls)
    assert second.peek_readiness() is None  # no I/O: it has not looked yet
    shared = second.readiness()
    assert len(emulator.calls) == calls  # zero Desk calls
    assert shared.from_cache and shared.summary() == report.summary() == SAMPLE_SUMMARY
    assert shared.languages == report.languages
    assert second.peek_readiness() is not None


def test_cold_processes_make_one_report_between_them(emulator: DeskEmulator, redis_url: str) -> None:
    settings = make_settings(emulator, REDIS_URL=redis_url)
    clients = [build_desk_client(settings) for _ in range(3)]
    results = together([clients[index % 3].readiness for index in range(30)])
    assert all(isinstance(result, ReadinessReport) for result in results), results[:3]
    assert len(emulator.calls_of(FAQ)) == 5 and len(emulator.calls_of(CONFIG)) == 5


def test_stale_if_error_serves_the_last_good_report(client: DeskClient, emulator: DeskEmulator) -> None:
    good = client.readiness()
    emulator.inject(Fault(code=60006, api=FAQ), times=-1)
    emulator.inject(Fault(code=60006, api=CONFIG), times=-1)
    time.sleep(1.05)
    stale = client.readiness(refresh=True)  # the list answers, but no check can be made
    assert stale.stale and stale.from_cache and stale.error is not None and stale.error.code == 60006
    assert stale.summary() == good.summary()
    emulator.clear_faults()
    emulator.inject(Fault(code=60006), times=-1)  # now the list fails too
    time.sleep(5.1)  # past the few seconds a failure is shared
    also_stale = client.readiness(refresh=True)
    assert also_stale.stale and also_stale.languages == good.languages


def test_with_no_report_yet_a_failure_is_raised(client: DeskClient, emulator: DeskEmulator) -> None:
    emulator.inject(Fault(code=-50040), times=-1)
    with pytest.raises(DeskError) as caught:
        client.readiness()
    assert caught.value.code == -50040


@pytest.mark.e2e
def test_a_write_makes_the_next_report_fresh() -> None:
    with DeskEmulator(sample="staging") as emu:
        client = build_desk_client(make_settings(emu))
        assert client.readiness().summary() == (
            "2 of 3 languages ready; Japanese has 1 FAQ questions, under half of the default language's 4 "
            "and has the welcome card off"
        )
        assert client.add_language("vi").applied
        assert client.peek_readiness() is None
        report = client.readiness()
    assert not report.from_cache and flags(report)["vi"] == (Flag.NO_FAQ, Flag.NO_FALLBACK, Flag.NO_WELCOME_CARD)


def test_a_storm_of_refreshes_stays_within_each_apis_limit(emulator: DeskEmulator) -> None:
    client = build_desk_client(make_settings(emulator))

    def twice() -> list[ReadinessReport]:
        first = client.readiness(refresh=True)
        time.sleep(1.2)  # past the second in which a refresh shares a report just made
        return [first, client.readiness(refresh=True)]

    results = together([twice] * 100)
    assert all(isinstance(pair, list) for pair in results), [r for r in results if not isinstance(r, list)][:3]
    assert all(not report.stale and report.summary() == SAMPLE_SUMMARY for pair in results for report in pair)
    for api in (FAQ, CONFIG):
        assert emulator.max_calls_in_window(1.0, api=api) <= 5
        assert 7 <= len(emulator.calls_of(api)) <= 21  # one report per wave, not one per caller
    assert -14 not in {call.outcome for call in emulator.calls}


def test_a_storm_across_processes_stays_within_each_apis_limit(emulator: DeskEmulator, redis_url: str) -> None:
    settings = make_settings(emulator, REDIS_URL=redis_url)
    clients = [build_desk_client(settings) for _ in range(2)]
    until = time.monotonic() + 3.0

    def storm(client: DeskClient) -> Callable[[], int]:
        def run() -> int:
            count = 0
            while time.monotonic() < until:
                report = client.readiness(refresh=True)
                assert not report.stale and report.summary() == SAMPLE_SUMMARY, report.summary()
                count += 1
            return count

        return run

    # 40 callers: enough to keep both processes' limiters saturated for 3 s, without so many threads in one
    # interpreter that the gap between a permit and its request reaching Desk outgrows the window's margin.
    counts = together([storm(clients[index % 2]) for index in range(40)])
    assert all(isinstance(count, int) and count > 0 for count in counts), counts[:3]
    for api in (FAQ, CONFIG):
        assert emulator.max_calls_in_window(1.0, api=api) <= 5
    assert -14 not in {call.outcome for call in emulator.calls}


# --- parsing ---------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
field_values = st.none() | st.booleans() | st.integers(-3, 30) | st.floats() | st.sampled_from(["0.8", "12", "x", ""])
faq_answers = st.fixed_dictionaries(
    {"ActionStatus": st.sampled_from(["OK", "FAIL"]), "ErrorCode": st.sampled_from([0, "0", -14, None])},
    optional={
        "StandardQuestionCount": field_values | json_values,
        "AllQuestionCount": field_values | json_values,
        "QuestionList": json_values,
    },
)
config_answers = st.fixed_dictionaries(
    {"ActionStatus": st.just("OK"), "ErrorCode": st.just(0)},
    optional={
        name: field_values | json_values | st.lists(field_values, max_size=3)
        for name in (
            "WelcomeCardEnable",
            "WelcomeCardTitle",
            "WelcomeCardQuestions",
            "ToAgentEnable",
            "DirectAnsweringReaches",
            "ChitchatEnable",
            "ClarifyEnable",
            "ChitchatReaches",
            "ClarifyReaches",
            "ClarifyMessage",
            "ClarifyNumber",
            "FallbackMsg",
            "Unknown",
        )
    },
)


@given(st.one_of(json_values, faq_answers))
def test_any_json_becomes_a_faq_count_or_a_desk_error(payload: object) -> None:
    try:
        count = parse_faq_count(payload)
    except DeskError as error:
        assert error.hint
        return
    assert isinstance(count.standard, int) and isinstance(count.all, int)
    assert count.standard >= 0 and count.all >= 0


@given(st.one_of(json_values, config_answers))
def test_any_json_becomes_a_robot_config_or_a_desk_error(payload: object) -> None:
    try:
        config = parse_robot_config(payload)
    except DeskError as error:
        assert error.hint
        return
    assert isinstance(config.welcome_card_enabled, bool) and isinstance(config.fallback_message, str)
    assert all(isinstance(question, str) for question in config.welcome_card_questions)
    for kept in (config.direct_answering_reaches, config.chitchat_reaches, config.clarify_reaches):
        assert kept is None or kept == "" or math.isfinite(float(kept))
    assert parse_robot_config({**OK, **config.to_desk("vi")}) == config  # what is written reads back the same


def test_numbers_as_strings_missing_and_unknown_fields_are_tolerated() -> None:
    count = parse_faq_count({**OK, "StandardQuestionCount": "12", "Extra": [1]})
    assert count == FaqCount(12, 12)  # a missing AllQuestionCount is at least the standard count
    assert parse_faq_count(OK) == FaqCount(0, 0)
    config = parse_robot_config(
        {**OK, "WelcomeCardEnable": "1", "DirectAnsweringReaches": 0.8, "FallbackMsg": 404, "New": {}}
    )
    assert config.welcome_card_enabled and config.direct_answering_reaches == "0.8" and config.fallback_message == "404"
    assert parse_robot_config({**OK, "DirectAnsweringReaches": "0.80"}).direct_answering_reaches == "0.80"  # verbatim
    empty = parse_robot_config(OK)
    assert (empty.welcome_card_enabled, empty.welcome_card_questions, empty.fallback_message) == (False, (), "")


@pytest.mark.parametrize(
    ("parse", "payload"),
    [
        (parse_faq_count, {**OK, "StandardQuestionCount": "many"}),
        (parse_faq_count, {**OK, "StandardQuestionCount": -1}),
        (parse_faq_count, {**OK, "AllQuestionCount": [3]}),
        (parse_robot_config, {**OK, "WelcomeCardQuestions": "Where is my order?"}),
        (parse_robot_config, {**OK, "WelcomeCardEnable": "yes"}),
        (parse_robot_config, {**OK, "FallbackMsg": {"text": "x"}}),
        (parse_robot_config, {**OK, "DirectAnsweringReaches": "NaN"}),
        (parse_robot_config, ["not", "an", "object"]),
    ],
)
def test_a_wrong_shape_is_a_bad_response_with_its_hint(parse: Callable[[object], object], payload: object) -> None:
    with pytest.raises(DeskError) as caught:
        parse(payload)
    assert caught.value.code == TransportCode.BAD_RESPONSE and "DESK_API_URL" in caught.value.hint


def test_an_error_envelope_is_that_error() -> None:
    with pytest.raises(DeskError) as caught:
        parse_robot_config({"ActionStatus": "FAIL", "ErrorCode": -14, "ErrorInfo": "slow down"})
    assert caught.value.code == -14 and "slow down" in str(caught.value)


def test_a_report_survives_the_shared_cache_with_its_errors() -> None:
    languages = [Language.of("en", True), Language.of("vi")]
    config = RobotSettings(True, ("Hi?",), "Sorry", True, "Title", "0.8", True, False)
    failed = desk_error(60006, "bad app", "req-1")
    report = ReadinessReport.build(languages, [FaqCount(4, 6), failed], [config, config], 123.5)
    again = ReadinessReport.from_json(report.to_json())
    # Errors compare by identity, as exceptions do: compare what is stored, and what is shown.
    assert again.to_json() == report.to_json() and again.summary() == report.summary()
    assert again.languages[0] == report.languages[0] and again.fetched_at == 123.5
    assert isinstance(again.languages[1].faq, DeskError) and again.languages[1].faq.error_info == "bad app"
    with pytest.raises((ValueError, KeyError, TypeError)):
        ReadinessReport.from_json('{"languages": [{"tag": "en"}], "fetched_at": 1}')


# --- declared requirements (ReadinessRules) ----------------------------------------------------------


def _rules_report() -> ReadinessReport:
    from bot.desk.readiness import FaqCount, RobotSettings

    bare = RobotSettings(welcome_card_enabled=False, welcome_card_questions=(), fallback_message="",
                         to_agent_enabled=False)
    languages = [Language.of("en", True), Language.of("ja", False)]
    return ReadinessReport.build(languages, [FaqCount(40, 40), FaqCount(30, 30)], [bare, bare], time.time())


def test_declared_rules_replace_the_built_in_thresholds() -> None:
    from bot.desk.readiness import BUILT_IN_RULES, Flag, ReadinessRules

    built_in = _rules_report()
    (_, japanese) = built_in.languages
    assert japanese.flags == (Flag.NO_FALLBACK, Flag.NO_WELCOME_CARD)  # 30 of 40: over half
    strict = built_in.judged(ReadinessRules(faq_ratio=0.8, fallback=False, welcome_card=False))
    (english, japanese) = strict.languages
    assert japanese.flags == (Flag.FEW_FAQ,)
    assert "under 80% of the default language's 40" in japanese.problems()[0]
    assert english.ready  # the default language is never compared with itself
    assert strict.judged(BUILT_IN_RULES).languages == built_in.languages
    lenient = built_in.judged(ReadinessRules(faq_ratio=0, fallback=False, welcome_card=False))
    assert lenient.ready and lenient.summary() == "2 of 2 languages ready"
