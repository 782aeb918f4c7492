"""The response parser: documented shapes, tolerated quirks, and never an unexpected exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.desk.errors import CATALOGUE, DeskError, RetryClass
from bot.desk.models import LanguageList, language_name, parse_body, parse_envelope

DOC_EXAMPLE = {
    "ActionStatus": "OK",
    "ErrorInfo": "",
    "ErrorCode": 0,
    "Languages": [{"LanguageTag": "", "IsDefault": 1}],
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
envelope_keys = st.sampled_from(["ActionStatus", "ErrorCode", "ErrorInfo", "Languages", "RequestId", "Other"])
item = st.dictionaries(st.sampled_from(["LanguageTag", "IsDefault", "Extra"]), json_values, max_size=3)
near_envelopes = st.fixed_dictionaries(
    {
        "ActionStatus": st.sampled_from(["OK", "FAIL", 1, None]),
        "ErrorCode": st.sampled_from([0, "0", -14, 70001, None, 1.5]),
    },
    optional={"Languages": st.lists(item | json_values, max_size=5) | json_values, "ErrorInfo": json_values},
) | st.dictionaries(envelope_keys, json_values)


@given(st.one_of(json_values, near_envelopes))
def test_any_json_becomes_a_list_or_a_desk_error(payload: object) -> None:
    try:
        result = parse_envelope(payload, fetched_at=1.0)
    except DeskError:
        return
    assert isinstance(result, LanguageList)
    assert all(isinstance(lang.name, str) and lang.name for lang in result.languages)


@given(st.binary(max_size=200))
def test_any_bytes_become_a_list_or_a_desk_error(body: bytes) -> None:
    try:
        assert isinstance(parse_body(body, fetched_at=1.0), LanguageList)
    except DeskError as error:
        assert error.code in CATALOGUE or isinstance(error.code, int)


def test_the_documented_example_parses_with_its_empty_default_tag() -> None:
    result = parse_envelope(DOC_EXAMPLE, fetched_at=5.0)
    assert result.default is not None and result.default.tag == "" and result.default.is_default
    assert result.fetched_at == 5.0


def test_quirks_are_tolerated() -> None:
    payload = {
        "ActionStatus": "OK",
        "ErrorCode": 0,
        "Unknown": {"x": 1},
        "Languages": [
            {"LanguageTag": "zh-TW", "IsDefault": 1, "Extra": True},
            {"LanguageTag": "en", "IsDefault": 1},
            {"LanguageTag": "ja"},
        ],
    }
    result = parse_envelope(payload, fetched_at=0)
    assert [lang.is_default for lang in result.languages] == [True, True, False]
    assert result.default is not None and result.default.tag == "zh-TW"  # the first of several
    assert parse_envelope({"ActionStatus": "OK", "ErrorCode": 0}, fetched_at=0).languages == ()


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"ActionStatus": "OK"},
        {"ActionStatus": "FAIL", "ErrorCode": 0},
        {"ActionStatus": "OK", "ErrorCode": 0, "Languages": {"en": 1}},
        {"ActionStatus": "OK", "ErrorCode": 0, "Languages": ["en"]},
        {"ActionStatus": "OK", "ErrorCode": 0, "Languages": [{"LanguageTag": 7}]},
    ],
)
def test_wrong_shapes_are_protocol_errors(payload: object) -> None:
    with pytest.raises(DeskError) as caught:
        parse_envelope(payload, fetched_at=0)
    assert caught.value.code == "bad-response"
    assert caught.value.retry is RetryClass.TRANSIENT_ONCE


def test_error_codes_map_to_the_catalogue() -> None:
    with pytest.raises(DeskError) as caught:
        parse_envelope({"ActionStatus": "FAIL", "ErrorCode": 70016, "ErrorInfo": "no key"}, fetched_at=0)
    assert "DESK_REGION" in caught.value.hint and caught.value.error_info == "no key"


@pytest.mark.parametrize(
    ("tag", "name"),
    [
        ("zh-TW", "Chinese (Taiwan)"),
        ("fil", "Filipino"),
        ("id", "Indonesian"),
        ("", "Default language (no tag)"),
        ("zz", "Unrecognised tag (zz)"),
        ("not a tag!", "Unrecognised tag (not a tag!)"),
    ],
)
def test_language_names(tag: str, name: str) -> None:
    assert language_name(tag) == name


def test_json_round_trip_keeps_what_the_list_says() -> None:
    original = parse_envelope(
        {**DOC_EXAMPLE, "Languages": [{"LanguageTag": "ja", "IsDefault": 1}, {"LanguageTag": ""}]}, fetched_at=9.5
    )
    copy = LanguageList.from_json(original.to_json())
    assert copy == original
    assert json.loads(original.to_json())["fetched_at"] == 9.5


def test_every_catalogue_entry_has_meaning_hint_and_retry_class() -> None:
    for code, spec in CATALOGUE.items():
        assert spec.meaning and spec.hint and isinstance(spec.retry, RetryClass), code
    documented = {
        -7,
        -14,
        -20,
        -50003,
        -50040,
        60002,
        60003,
        60004,
        60005,
        60006,
        60007,
        60008,
        60009,
        60010,
        60011,
        60012,
        60013,
        60014,
        60015,
        60016,
        60017,
        60018,
        60019,
        60020,
        60021,
        70001,
        70002,
        70003,
        70005,
        70009,
        70013,
        70014,
        70016,
        70020,
        70050,
        70051,
        70052,
        70107,
        70114,
        70169,
        70402,
        70403,
        70500,
        141000,
        141002,
        141004,
    }
    assert documented <= set(CATALOGUE)
