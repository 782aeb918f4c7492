"""The settings modal's pure parts, fast (no servers): bot/management/settings_form.py reads and
checks a submission, compares and puts the change onto what Desk has; settings_views.py renders
the views within Slack's limits (checked by the fake Slack's own view rules, in-process)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.desk.readiness import RobotSettings
from bot.management.settings_form import (
    AGENT_BLOCK,
    CARD_BLOCK,
    FALLBACK_BLOCK,
    FALLBACK_LIMIT,
    FIELD_NAMES,
    MAX_QUESTIONS,
    QUESTION_LIMIT,
    QUESTIONS_BLOCK,
    TITLE_BLOCK,
    TITLE_LIMIT,
    EditableSettings,
    audit_detail,
    changed_fields,
    changed_since,
    check_values,
    onto,
    outcome_of,
    read_submission,
    settings_from_json,
    settings_to_json,
)
from bot.management.settings_views import (
    FORM_CALLBACK,
    REVIEW_CALLBACK,
    ModalMetadata,
    form_view,
    loading_view,
    notice_view,
    review_view,
)
from bot.sandbox.slack_views import state_values, view_problems
from bot.slack.blocks import RenderContext

CTX = RenderContext(sdkappid=1400000001, region="Singapore")
READ = RobotSettings(
    welcome_card_enabled=True, welcome_card_questions=("Where is my order?",), fallback_message="",
    to_agent_enabled=True, welcome_card_title="Hi", direct_answering_reaches="0.80", chitchat_enabled=False,
    clarify_enabled=True, clarify_reaches="0.5", clarify_message="Did you mean", clarify_number=3,
)


def submission(fallback: str = "", card: str | None = "on", title: str = "", questions: str = "",
               agent: str | None = "on") -> dict[str, Any]:
    """`view.state.values` as Slack sends them for the form's inputs."""
    def text(value: str) -> dict[str, Any]:
        return {"value": {"type": "plain_text_input", "value": value}}

    def switch(value: str | None) -> dict[str, Any]:
        option = None if value is None else {"value": value, "text": {"type": "plain_text", "text": value}}
        return {"value": {"type": "radio_buttons", "selected_option": option}}

    return {FALLBACK_BLOCK: text(fallback), CARD_BLOCK: switch(card), TITLE_BLOCK: text(title),
            QUESTIONS_BLOCK: text(questions), AGENT_BLOCK: switch(agent)}


LINE = st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=QUESTION_LIMIT).map(
    str.strip).filter(bool)
EDITABLE = st.builds(
    EditableSettings,
    fallback_message=st.text(max_size=FALLBACK_LIMIT).map(lambda t: t.replace("\r", "").strip()),
    welcome_card_enabled=st.booleans(),
    welcome_card_title=st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=TITLE_LIMIT).map(str.strip),
    welcome_card_questions=st.lists(LINE, max_size=MAX_QUESTIONS).map(tuple),
    to_agent_enabled=st.booleans(),
)


def as_submitted(wanted: EditableSettings) -> dict[str, Any]:
    return submission(wanted.fallback_message, "on" if wanted.welcome_card_enabled else "off",
                      wanted.welcome_card_title, "\n".join(wanted.welcome_card_questions),
                      "on" if wanted.to_agent_enabled else "off")


# --- reading a submission ---------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(wanted=EDITABLE)
def test_a_submission_within_the_limits_reads_back_as_entered(wanted: EditableSettings) -> None:
    assert read_submission(as_submitted(wanted)) == (wanted, {})
    assert check_values(wanted) is None  # the command line's checks agree with the modal's


@pytest.mark.parametrize(
    ("values", "block", "says"),
    [
        (submission(fallback="x" * (FALLBACK_LIMIT + 1)), FALLBACK_BLOCK, f"at most {FALLBACK_LIMIT}"),
        (submission(title="t" * (TITLE_LIMIT + 1)), TITLE_BLOCK, f"at most {TITLE_LIMIT}"),
        (submission(title="two\nlines"), TITLE_BLOCK, "one line"),
        (submission(questions="\n".join(f"Q{i}" for i in range(MAX_QUESTIONS + 1))), QUESTIONS_BLOCK,
         f"at most {MAX_QUESTIONS}"),
        (submission(questions="one\n\nthree"), QUESTIONS_BLOCK, "Line 2 is empty"),
        (submission(questions="ok\n" + "q" * (QUESTION_LIMIT + 1)), QUESTIONS_BLOCK, "Question 2"),
        (submission(card=None), CARD_BLOCK, "on or off"),
        (submission(agent="maybe"), AGENT_BLOCK, "on or off"),  # a forged option is not a default
    ],
)
def test_each_limit_is_an_error_under_its_field(values: dict[str, Any], block: str, says: str) -> None:
    wanted, errors = read_submission(values)
    assert wanted is None and list(errors) == [block] and says in errors[block]


def test_the_limits_themselves_are_allowed_and_line_endings_are_normalised() -> None:
    values = submission(fallback="x" * FALLBACK_LIMIT, title="t" * TITLE_LIMIT,
                        questions="\r\n".join("q" * QUESTION_LIMIT for _ in range(MAX_QUESTIONS)))
    wanted, errors = read_submission(values)
    assert errors == {} and wanted is not None
    assert wanted.welcome_card_questions == ("q" * QUESTION_LIMIT,) * MAX_QUESTIONS


def test_a_state_with_inputs_missing_or_malformed_is_refused_not_defaulted() -> None:
    assert read_submission({})[1].keys() == {CARD_BLOCK, AGENT_BLOCK}
    hostile: dict[str, Any] = {FALLBACK_BLOCK: "text", CARD_BLOCK: {"value": []}, AGENT_BLOCK: {"value": {"a": 1}}}
    assert read_submission(hostile)[0] is None


def test_the_command_line_gets_the_same_checks_in_one_line() -> None:
    base = EditableSettings.of(READ)
    assert "at most 20" in (check_values(replace(base, welcome_card_questions=("q",) * 21)) or "")
    assert (check_values(replace(base, welcome_card_title="a\nb")) or "").startswith("The welcome card title")
    assert "\n" not in (check_values(replace(base, fallback_message="x" * 1001)) or "\n")


# --- comparing and writing ---------------------------------------------------------------------


@given(read=EDITABLE, wanted=EDITABLE)
def test_onto_replaces_only_the_changed_fields_and_keeps_the_thresholds(
    read: EditableSettings, wanted: EditableSettings
) -> None:
    current = replace(READ, **{name: getattr(read, name) for name in FIELD_NAMES})
    names = changed_fields(read, wanted)
    written = onto(current, wanted, names)
    assert EditableSettings.of(written) == wanted  # what the person asked for …
    assert (written.direct_answering_reaches, written.clarify_message, written.clarify_number) == ("0.80",
                                                                                                     "Did you mean", 3)
    assert onto(current, wanted, []) == current  # … and nothing when nothing changed


@given(read=EDITABLE, wanted=EDITABLE)
def test_the_digests_a_modal_carries_tell_exactly_which_fields_changed(
    read: EditableSettings, wanted: EditableSettings
) -> None:
    assert changed_since(read.digests(), wanted) == changed_fields(read, wanted)


def test_a_lost_answer_is_applied_not_seen_or_unknown_by_what_is_read_again() -> None:
    read = EditableSettings.of(READ)
    wanted = replace(read, fallback_message="Sorry?", to_agent_enabled=False)
    assert outcome_of(read, wanted, wanted) == "applied"
    assert outcome_of(read, wanted, read) == "not-seen"
    assert outcome_of(read, wanted, replace(read, fallback_message="Sorry?")) == "unknown"  # half of it
    assert outcome_of(read, wanted, replace(wanted, welcome_card_title="other")) == "applied"  # others' fields


@given(settings_read=EDITABLE)
def test_settings_stored_with_a_request_read_back_whole(settings_read: EditableSettings) -> None:
    whole = replace(READ, **{name: getattr(settings_read, name) for name in FIELD_NAMES})
    assert settings_from_json(settings_to_json(whole)) == whole
    assert EditableSettings.from_json(settings_read.to_json()) == settings_read


def test_the_audit_detail_names_each_field_old_and_new_within_its_limit() -> None:
    read = EditableSettings.of(READ)
    detail = audit_detail(read, replace(read, fallback_message="Sorry, I did not get that", to_agent_enabled=False))
    assert detail == 'fallback message: (empty) → "Sorry, I did not get that"; transfer to an agent: on → off'
    long = audit_detail(read, replace(read, fallback_message="x" * 1000, welcome_card_questions=("q" * 60,) * 20,
                                      welcome_card_title="t" * 100))
    assert len(long) <= 300 and long.endswith("…")


# --- the views ------------------------------------------------------------------------------------

HOSTILE = "<!channel> *bold* <https://evil.example|click> &amp;"
LABELLED = RenderContext(sdkappid=1400000002, region="Frankfurt", label="<!here> " + "L" * 200, app="staging")


def metadata(read: EditableSettings) -> ModalMetadata:
    return ModalMetadata("staging", "fil", "c" * 32, read.digests())


def test_the_largest_form_and_review_are_views_slack_accepts() -> None:
    read = EditableSettings.of(READ)
    biggest = EditableSettings(HOSTILE + "x" * (FALLBACK_LIMIT - len(HOSTILE)), True, "t" * TITLE_LIMIT,
                               tuple(f"{i:02d}" + "q" * (QUESTION_LIMIT - 2) for i in range(MAX_QUESTIONS)), False)
    form = form_view(LABELLED, metadata(read), READ, biggest)
    review = review_view(LABELLED, metadata(read), read, biggest)
    for view in (form, review, loading_view(LABELLED, "fil"), notice_view("x" * 5000)):
        assert view_problems(view) == [], view
        assert len(json.dumps(view)) < 250_000
    assert form["callback_id"] == FORM_CALLBACK and review["callback_id"] == REVIEW_CALLBACK
    assert read_submission(state_values(form)) == (biggest, {})  # the form shows what it will read back


def test_desk_and_user_text_is_data_in_every_view() -> None:
    read = replace(EditableSettings.of(READ), welcome_card_title=HOSTILE)
    shown = json.dumps([review_view(LABELLED, metadata(read), read, replace(read, fallback_message=HOSTILE)),
                        loading_view(LABELLED, "fil")])
    assert "<!channel>" not in shown and "<!here>" not in shown and "<https://evil" not in shown
    assert "&lt;!channel&gt;" in shown


def test_the_metadata_carries_only_what_is_shown_and_refuses_what_is_not_ours() -> None:
    read = EditableSettings.of(READ)
    carried = metadata(read)
    text = carried.to_json()
    assert ModalMetadata.parse(text) == carried
    assert set(json.loads(text)) == {"app", "tag", "change", "read"}  # no user, no admin flag, no decision
    for forged in (None, "", "[]", "not json", json.dumps({"app": 1, "tag": "fil", "change": "x"})):
        assert ModalMetadata.parse(forged) is None
    assert len(text) < 3000  # Slack's limit for private_metadata


def test_a_view_names_an_unlabelled_app_by_its_sdkappid_once() -> None:
    shown = json.dumps(loading_view(CTX, "fil"))
    assert shown.count("SDKAppID 1400000001") == 1
