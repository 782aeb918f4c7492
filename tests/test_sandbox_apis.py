"""The emulator's write and readiness APIs, over real loopback sockets with `requests`.

`robot_add_language` / `robot_del_language` change the languages for real and refuse as
docs/desk-api.md §8 documents; `list_faq` / `desc_robot_config` answer from a FAQ library and
settings per language (§9); every API has its own 5 calls/s, and faults can target one API.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from bot.desk.languages import ADVANCED_EDITION_LANGUAGE_LIMIT, SUPPORTED_TAGS
from bot.sandbox.desk_emulator import APIS, DeskEmulator, Fault
from bot.sandbox.desk_samples import SAMPLES, FaqQuestion, Sample, questions
from tests.support.clocks import Dial
from tests.support.emulator_http import control, error_code, query
from tests.support.tiers import e2e_fixture

ADD, DELETE, FAQ, CONFIG, LIST = (
    "robot_add_language",
    "robot_del_language",
    "list_faq",
    "desc_robot_config",
    "robot_get_language_list",
)
LIVE_FAQ = {"PageIndex": 1, "PageSize": 1, "Status": 4}


def desk(emu: DeskEmulator, api: str, payload: Any = None, *, timeout: float = 5.0) -> requests.Response:
    body = b"{}" if payload is None else json.dumps(payload).encode()
    url = f"{emu.base_url}/v4/openim_console_http_svc/{api}?{query()}"
    return requests.post(url, data=body, timeout=timeout)


def answer(emu: DeskEmulator, api: str, payload: Any = None) -> dict[str, Any]:
    """The answer of a call that must succeed."""
    response = desk(emu, api, payload)
    assert error_code(response) == 0, response.json()
    data: dict[str, Any] = response.json()
    return data


def tags(emu: DeskEmulator) -> list[str]:
    return [item["LanguageTag"] for item in answer(emu, LIST)["Languages"]]


@e2e_fixture
def staging() -> Iterator[DeskEmulator]:
    """The staging sample, with room for many calls per second (the limit has its own test)."""
    with DeskEmulator(sample="staging", rate_limit=1000) as emu:
        yield emu


@e2e_fixture
def sample() -> Iterator[DeskEmulator]:
    """The default sample (what DESK_SANDBOX=1 shows), with room for many calls per second."""
    with DeskEmulator(rate_limit=1000) as emu:
        yield emu


# --- writes -----------------------------------------------------------------------------------------


def test_add_then_delete_changes_the_list(staging: DeskEmulator) -> None:
    assert tags(staging) == ["", "en", "ja"]
    bare_envelope = {"ActionStatus", "ErrorInfo", "ErrorCode", "RequestId"}  # docs/desk-api.md §8
    assert set(answer(staging, ADD, {"LanguageTag": "vi"})) == bare_envelope
    assert tags(staging) == ["", "en", "ja", "vi"]
    assert staging.languages == [("", 1), ("en", 0), ("ja", 0), ("vi", 0)]
    assert set(answer(staging, DELETE, {"LanguageTag": "vi"})) == bare_envelope
    assert tags(staging) == ["", "en", "ja"]


def test_adding_an_unsupported_tag_is_50051(staging: DeskEmulator) -> None:
    for tag in ("de", "zh-CN", "EN", "fr"):
        assert error_code(desk(staging, ADD, {"LanguageTag": tag})) == -50051
    assert tags(staging) == ["", "en", "ja"]
    for tag in set(SUPPORTED_TAGS) - {"en", "ja"}:
        staging.set_edition(language_limit=10)
        assert error_code(desk(staging, ADD, {"LanguageTag": tag})) == 0


def test_the_limit_counts_the_default_language(staging: DeskEmulator) -> None:
    assert staging.language_limit == 5
    assert [error_code(desk(staging, ADD, {"LanguageTag": tag})) for tag in ("vi", "id", "fil")] == [0, 0, -50052]
    assert len(tags(staging)) == 5


def test_an_edition_without_multilingual_support_refuses_adds(staging: DeskEmulator) -> None:
    staging.set_edition(multilingual=False)
    staging.set_faq("ja", [])
    assert error_code(desk(staging, ADD, {"LanguageTag": "vi"})) == -50042
    assert error_code(desk(staging, DELETE, {"LanguageTag": "ja"})) == 0  # only adding is refused
    assert tags(staging) == ["", "en"]


def test_the_default_language_cannot_be_deleted(staging: DeskEmulator, sample: DeskEmulator) -> None:
    assert error_code(desk(staging, DELETE, {"LanguageTag": ""})) == -50055
    assert error_code(desk(sample, DELETE, {"LanguageTag": "en"})) == -50055
    assert tags(staging)[0] == "" and tags(sample)[0] == "en"


def test_a_language_with_questions_cannot_be_deleted(sample: DeskEmulator) -> None:
    assert answer(sample, FAQ, {**LIVE_FAQ, "LanguageTag": "vi"})["StandardQuestionCount"] == 6
    assert error_code(desk(sample, DELETE, {"LanguageTag": "vi"})) == -50056
    # No live question, but two disabled ones: still questions.
    sample.set_faq("vi", questions("vi", 0, disabled=2))
    assert answer(sample, FAQ, {**LIVE_FAQ, "LanguageTag": "vi"})["StandardQuestionCount"] == 0
    assert error_code(desk(sample, DELETE, {"LanguageTag": "vi"})) == -50056
    sample.set_faq("vi", [])
    assert error_code(desk(sample, DELETE, {"LanguageTag": "vi"})) == 0
    assert "vi" not in tags(sample)


@pytest.mark.parametrize("payload", [{}, {"LanguageTag": 7}, {"LanguageTag": None}, {"LanguageTag": ""}])
def test_a_write_without_a_tag_is_minus_7(staging: DeskEmulator, payload: dict[str, Any]) -> None:
    assert error_code(desk(staging, ADD, payload)) == -7


def test_adding_what_is_there_or_deleting_what_is_not_changes_nothing(staging: DeskEmulator) -> None:
    assert error_code(desk(staging, ADD, {"LanguageTag": "en"})) == 0
    assert error_code(desk(staging, DELETE, {"LanguageTag": "vi"})) == 0
    assert tags(staging) == ["", "en", "ja"]


def test_a_new_language_starts_unconfigured_and_empty(staging: DeskEmulator) -> None:
    answer(staging, ADD, {"LanguageTag": "vi"})
    config = answer(staging, CONFIG, {"LanguageTag": "vi"})
    assert config["WelcomeCardEnable"] == 0 and config["FallbackMsg"] == ""
    assert answer(staging, FAQ, {**LIVE_FAQ, "LanguageTag": "vi"})["StandardQuestionCount"] == 0


# --- readiness reads --------------------------------------------------------------------------------


def test_faq_counts_of_the_default_sample(sample: DeskEmulator) -> None:
    counts = {
        tag: answer(sample, FAQ, {**LIVE_FAQ, "LanguageTag": tag})["StandardQuestionCount"] for tag in tags(sample)
    }
    assert counts == {"en": 12, "zh": 10, "ja": 7, "vi": 6, "fil": 6}
    english = answer(sample, FAQ, {**LIVE_FAQ, "LanguageTag": "en"})
    assert english["AllQuestionCount"] == 24  # each live question has one similar question
    assert len(english["QuestionList"]) == 1
    assert set(english["QuestionList"][0]) == {
        "StandardQuestionId",
        "StandardQuestion",
        "Status",
        "CategoryId",
        "Answer",
        "AnswerType",
        "QuestionType",
        "SimilarQuestions",
    }


def test_faq_status_filter_pagination_and_keyword(sample: DeskEmulator) -> None:
    page = {"PageIndex": 1, "PageSize": 100, "LanguageTag": "en"}
    assert answer(sample, FAQ, page)["StandardQuestionCount"] == 13  # no Status: live and disabled
    assert answer(sample, FAQ, {**page, "Status": 5})["StandardQuestionCount"] == 1
    third = answer(sample, FAQ, {**page, "Status": 4, "PageSize": 5, "PageIndex": 3})
    assert [item["StandardQuestion"] for item in third["QuestionList"]] == ["Question 11 (en)", "Question 12 (en)"]
    assert third["StandardQuestionCount"] == 12
    assert answer(sample, FAQ, {**page, "Question": "Question 1"})["StandardQuestionCount"] == 4  # 1, 10, 11, 12


def test_an_empty_or_missing_tag_means_the_default_language(sample: DeskEmulator, staging: DeskEmulator) -> None:
    english = answer(sample, FAQ, {**LIVE_FAQ, "LanguageTag": "en"})["StandardQuestionCount"]
    assert answer(sample, FAQ, {**LIVE_FAQ, "LanguageTag": ""})["StandardQuestionCount"] == english
    assert answer(sample, FAQ, LIVE_FAQ)["StandardQuestionCount"] == english
    assert answer(staging, FAQ, {**LIVE_FAQ, "LanguageTag": ""})["StandardQuestionCount"] == 4
    assert answer(staging, CONFIG, {"LanguageTag": ""})["WelcomeCardEnable"] == 1


@pytest.mark.parametrize(
    "payload",
    [{}, {"PageIndex": 0, "PageSize": 1}, {"PageIndex": 1, "PageSize": "1"}, {**LIVE_FAQ, "Status": 3}],
)
def test_faq_parameters_are_checked(sample: DeskEmulator, payload: dict[str, Any]) -> None:
    assert error_code(desk(sample, FAQ, payload)) == -7


def test_settings_of_the_default_sample(sample: DeskEmulator) -> None:
    english = answer(sample, CONFIG, {"LanguageTag": "en"})
    assert english["WelcomeCardEnable"] == 1 and len(english["WelcomeCardQuestions"]) == 3
    assert english["FallbackMsg"] and english["DirectAnsweringReaches"] == "0.8"  # a string, as documented
    assert answer(sample, CONFIG, {"LanguageTag": "fil"})["FallbackMsg"] == ""
    assert answer(sample, CONFIG, {"LanguageTag": ""}) | {"RequestId": ""} == english | {"RequestId": ""}
    assert error_code(desk(sample, CONFIG, {"LanguageTag": "de"})) == 141004


@pytest.mark.e2e
def test_constructor_options_replace_the_sample() -> None:
    with DeskEmulator(
        languages=[("en", 1), ("vi", 0)],
        faq={"vi": [FaqQuestion("Xin chào?", similar=("Chào?", "Hello?"))]},
        settings={"vi": {"FallbackMsg": "Xin lỗi"}},
        language_limit=2,
        multilingual=True,
    ) as emu:
        assert tags(emu) == ["en", "vi"]
        vi = answer(emu, FAQ, {**LIVE_FAQ, "LanguageTag": "vi"})
        assert (vi["StandardQuestionCount"], vi["AllQuestionCount"]) == (1, 3)
        assert answer(emu, CONFIG, {"LanguageTag": "vi"})["FallbackMsg"] == "Xin lỗi"
        assert error_code(desk(emu, ADD, {"LanguageTag": "ja"})) == -50052


def test_every_sample_is_within_the_edition_s_limit_of_languages() -> None:
    for sample in SAMPLES.values():  # 5 in the advanced edition, the default included (docs/desk-api.md §8)
        assert sample.language_limit == ADVANCED_EDITION_LANGUAGE_LIMIT == 5
        assert len(sample.languages) <= sample.language_limit
    with pytest.raises(ValueError, match="over the edition's limit of 5"):
        Sample(languages=tuple((tag, int(tag == "en")) for tag in SUPPORTED_TAGS))


@pytest.mark.e2e
def test_samples_differ() -> None:
    assert SAMPLES["default"].languages != SAMPLES["staging"].languages
    with DeskEmulator(sample="staging") as first, DeskEmulator() as second:
        assert tags(first) != tags(second)


# --- rate limits and faults per API -----------------------------------------------------------------


@pytest.mark.e2e
def test_each_api_has_its_own_five_calls_per_second() -> None:
    clock = Dial(float(int(time.time())))
    with DeskEmulator(clock=clock) as emu:
        bodies = {LIST: {}, ADD: {"LanguageTag": "en"}, DELETE: {"LanguageTag": "xx"}, FAQ: LIVE_FAQ, CONFIG: {},
                  "update_robot_config": {"LanguageTag": "en"}}
        codes = {api: [error_code(desk(emu, api, bodies[api])) for _ in range(6)] for api in APIS}
        assert codes == {api: [0, 0, 0, 0, 0, -14] for api in APIS}
        assert emu.max_calls_in_window(1.0) == 6 * len(APIS)
        assert all(emu.max_calls_in_window(1.0, api=api) == 6 for api in APIS)
        assert {record.api for record in emu.calls} == set(APIS)


def test_a_fault_for_one_api_waits_for_a_call_of_that_api(staging: DeskEmulator) -> None:
    staging.inject(Fault(code=-14, api=ADD))
    staging.inject(Fault(code=141002))  # any API: the next call that is not taken by the first
    assert error_code(desk(staging, LIST)) == 141002
    assert error_code(desk(staging, FAQ, LIVE_FAQ)) == 0
    assert error_code(desk(staging, ADD, {"LanguageTag": "vi"})) == -14
    assert error_code(desk(staging, ADD, {"LanguageTag": "vi"})) == 0
    assert [(c.api, c.outcome) for c in staging.calls] == [(LIST, 141002), (FAQ, 0), (ADD, -14), (ADD, 0)]


def test_a_refused_write_changes_nothing(staging: DeskEmulator) -> None:
    staging.inject(Fault(http_status=502, api=ADD))
    staging.inject(Fault(hang=0.1, code=60008, api=ADD))
    assert desk(staging, ADD, {"LanguageTag": "vi"}).status_code == 502
    assert error_code(desk(staging, ADD, {"LanguageTag": "vi"})) == 60008
    assert tags(staging) == ["", "en", "ja"]


def test_a_late_answer_comes_after_the_write_took_effect(staging: DeskEmulator) -> None:
    staging.inject(Fault(late=1.0, api=ADD))
    with pytest.raises(requests.exceptions.ReadTimeout):
        desk(staging, ADD, {"LanguageTag": "vi"}, timeout=0.3)
    assert "vi" in tags(staging)
    assert [c.outcome for c in staging.calls_of(ADD)] == ["late"]


def test_a_dropped_answer_after_the_write_took_effect(staging: DeskEmulator) -> None:
    staging.set_faq("ja", [])
    staging.inject(Fault(drop=True, api=DELETE))
    with pytest.raises(requests.exceptions.ConnectionError):
        desk(staging, DELETE, {"LanguageTag": "ja"})
    assert "ja" not in tags(staging)
    assert [c.outcome for c in staging.calls_of(DELETE)] == ["dropped"]


def test_a_truncated_answer_after_the_write_took_effect(staging: DeskEmulator) -> None:
    staging.inject(Fault(truncated=True, api=ADD))
    response = desk(staging, ADD, {"LanguageTag": "vi"})
    assert response.status_code == 200 and response.text.startswith('{"ActionStatus": "OK"')
    with pytest.raises(ValueError):
        response.json()
    assert "vi" in tags(staging)


@pytest.mark.parametrize("fields", [{"api": "robot_nothing"}, {"late": -1}, {"late": "2"}, {"drop": 1}])
def test_invalid_new_fault_fields_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Fault(**fields)  # type: ignore[arg-type]


# --- the control API --------------------------------------------------------------------------------


def test_control_faq_settings_edition_and_api_faults(staging: DeskEmulator) -> None:
    questions = [{"StandardQuestion": "Q?", "Status": 4, "SimilarQuestions": ["Q2?"]}, {"StandardQuestion": "Old"}]
    assert control(staging, "PUT", "faq", {"LanguageTag": "ja", "Questions": questions}).json() == {"ok": True}
    assert answer(staging, FAQ, {"PageIndex": 1, "PageSize": 10, "LanguageTag": "ja"})["AllQuestionCount"] == 3
    assert control(staging, "PUT", "settings", {"LanguageTag": "ja", "Settings": {"FallbackMsg": ""}}).ok
    assert answer(staging, CONFIG, {"LanguageTag": "ja"})["FallbackMsg"] == ""
    assert control(staging, "PUT", "edition", {"multilingual": False}).ok
    assert error_code(desk(staging, ADD, {"LanguageTag": "vi"})) == -50042
    control(staging, "PUT", "edition", {"multilingual": True, "language_limit": 4})
    assert control(staging, "POST", "faults", {"api": ADD, "late": 0.1}).ok
    assert error_code(desk(staging, LIST)) == 0
    assert error_code(desk(staging, ADD, {"LanguageTag": "vi"})) == 0
    assert staging.calls_of(ADD)[-1].outcome == "late"
    assert error_code(desk(staging, ADD, {"LanguageTag": "id"})) == -50052


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("faq", {"LanguageTag": "ja"}),
        ("faq", {"LanguageTag": "ja", "Questions": [{"StandardQuestion": "Q", "Status": 3}]}),
        ("faq", {"LanguageTag": 1, "Questions": []}),
        ("settings", {"LanguageTag": "ja", "Settings": []}),
        ("edition", {"multilingual": "no"}),
        ("edition", {"language_limit": 0}),
        ("edition", {"bogus": 1}),
        ("faults", {"api": "nothing"}),
    ],
)
def test_control_refuses_bad_state(staging: DeskEmulator, path: str, payload: object) -> None:
    assert control(staging, "PUT" if path != "faults" else "POST", path, payload).status_code == 400


# --- update_robot_config (docs/desk-api.md §12) ------------------------------------------------------
UPDATE = "update_robot_config"


def test_update_changes_one_language_and_keeps_what_it_leaves_out(sample: DeskEmulator) -> None:
    before = answer(sample, CONFIG, {"LanguageTag": "fil"})
    assert error_code(desk(sample, UPDATE, {"LanguageTag": "fil", "FallbackMsg": "Pasensya na."})) == 0
    after = answer(sample, CONFIG, {"LanguageTag": "fil"})
    changed = {name for name in after if after[name] != before.get(name)} - {"RequestId"}
    assert changed == {"FallbackMsg"} and after["FallbackMsg"] == "Pasensya na."  # the others kept
    assert answer(sample, CONFIG, {"LanguageTag": "vi"})["FallbackMsg"] != "Pasensya na."
    assert "LanguageTag" not in after


def test_update_of_the_default_by_its_empty_tag(sample: DeskEmulator) -> None:
    assert error_code(desk(sample, UPDATE, {"LanguageTag": "", "WelcomeCardTitle": "Welcome"})) == 0
    assert answer(sample, CONFIG, {"LanguageTag": "en"})["WelcomeCardTitle"] == "Welcome"  # en is the default


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"LanguageTag": "th", "FallbackMsg": "x"}, 141004),  # not one of the chatbot's languages
        ({"LanguageTag": 7, "FallbackMsg": "x"}, -7),
        ({"LanguageTag": "fil", "WelcomeCardEnable": 2}, -7),
        ({"LanguageTag": "fil", "WelcomeCardEnable": True}, -7),
        ({"LanguageTag": "fil", "WelcomeCardQuestions": "Hi?"}, -7),
        ({"LanguageTag": "fil", "FallbackMsg": 404}, -7),
        ({"LanguageTag": "fil", "ClarifyNumber": "3"}, -7),
        ({"LanguageTag": "fil", "WelcomeCardQuestions": [f"Q{n}?" for n in range(21)]}, 141004),
    ],
    ids=["not-added", "tag-not-a-string", "switch-2", "switch-bool", "questions-not-a-list", "message-number",
         "count-string", "21-questions"],
)
def test_update_refuses_and_changes_nothing(sample: DeskEmulator, payload: dict[str, Any], code: int) -> None:
    before = answer(sample, CONFIG, {"LanguageTag": "fil"})
    assert error_code(desk(sample, UPDATE, payload)) == code
    after = answer(sample, CONFIG, {"LanguageTag": "fil"})
    assert {**after, "RequestId": ""} == {**before, "RequestId": ""}


def test_a_fault_for_update_applies_the_write_then_loses_the_answer(sample: DeskEmulator) -> None:
    sample.inject(Fault(drop=True, api=UPDATE))
    with pytest.raises(requests.exceptions.ConnectionError):
        desk(sample, UPDATE, {"LanguageTag": "fil", "FallbackMsg": "Pasensya na."})
    assert answer(sample, CONFIG, {"LanguageTag": "fil"})["FallbackMsg"] == "Pasensya na."
    assert [call.outcome for call in sample.calls_of(UPDATE)] == ["dropped"]
