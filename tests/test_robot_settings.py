"""One language's chatbot settings: `DeskClient.robot_settings()` and `update_robot_settings()`
(docs/desk-api.md §12), and `python -m bot settings`.

The fast tests run the real client over a scripted transport (tests/support/desk_transport.py);
the e2e ones run it over loopback against the emulator, whose call records count every write
that reached "Desk".
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3.exceptions

from bot.boot import build_desk_client
from bot.desk import Api, DeskClient, DeskError, InProcessCache, InProcessLimiter, RobotSettings, UserSigSource
from bot.desk.errors import TransportCode
from bot.desk.readiness import FaqCount, Flag, parse_robot_config
from bot.desk.writes import write_may_have_run
from bot.sandbox.desk_emulator import SANDBOX_KEY, SANDBOX_SDKAPPID, DeskEmulator, Fault
from bot.sandbox.desk_samples import CONFIGURED_SETTINGS
from tests.support.concurrency import together
from tests.support.desk_transport import BASE_URL, OK, ScriptedDesk
from tests.support.environment import desk_env, make_settings
from tests.support.served import clean_env

READ, WRITE, LIST = "desc_robot_config", "update_robot_config", "robot_get_language_list"

# As the documentation's example has it: thresholds as a number and as strings, 0/1 switches.
DESK_ANSWER: dict[str, Any] = {
    **OK,
    "WelcomeCardQuestions": ["Where is my order?", "Talk to a person"],
    "WelcomeCardEnable": 1,
    "WelcomeCardTitle": "Hi!",
    "ToAgentEnable": 0,
    "DirectAnsweringReaches": 0.56,
    "ChitchatEnable": "1",
    "ChitchatReaches": "0.70",
    "ClarifyEnable": 0,
    "ClarifyReaches": "0.6",
    "ClarifyMessage": "Did you mean:",
    "ClarifyNumber": "3",
    "FallbackMsg": "Sorry.",
    "RequestId": "read-1",
}
SETTINGS = parse_robot_config(DESK_ANSWER)


class CountingLimiter:
    """A limiter that always permits and counts: which API's budget each attempt drew from."""

    def __init__(self) -> None:
        self.acquired = 0

    def acquire(self, timeout: float) -> bool:
        self.acquired += 1
        return True


def client_over(desk: ScriptedDesk, slept: list[float] | None = None, **options: Any) -> DeskClient:
    return DeskClient(
        sdkappid=SANDBOX_SDKAPPID,
        identifier="administrator",
        usersig=UserSigSource(sdkappid=SANDBOX_SDKAPPID, identifier="administrator", key=SANDBOX_KEY),
        base_urls=[BASE_URL],
        limiter=InProcessLimiter(5),
        cache=InProcessCache(ttl=60, stale_max=600),
        session=desk.session(),
        sleep=(slept if slept is not None else []).append,
        **options,
    )


# --- fast: the model -------------------------------------------------------------------------------


def test_the_kept_fields_are_read_verbatim() -> None:
    assert RobotSettings(
        welcome_card_enabled=True,
        welcome_card_questions=("Where is my order?", "Talk to a person"),
        fallback_message="Sorry.",
        to_agent_enabled=False,
        welcome_card_title="Hi!",
        direct_answering_reaches="0.56",
        chitchat_enabled=True,
        clarify_enabled=False,
        chitchat_reaches="0.70",  # the text as sent, not 0.7
        clarify_reaches="0.6",
        clarify_message="Did you mean:",
        clarify_number=3,
    ) == SETTINGS


def test_a_field_desk_left_out_is_left_out_of_the_write() -> None:
    sparse = parse_robot_config({**OK, "FallbackMsg": "Sorry.", "ClarifyEnable": 1})
    body = sparse.to_desk("vi")
    assert body == {
        "WelcomeCardQuestions": [], "WelcomeCardEnable": 0, "WelcomeCardTitle": "", "ToAgentEnable": 0,
        "ClarifyEnable": 1, "FallbackMsg": "Sorry.", "LanguageTag": "vi",
    }


# --- fast: the client over a scripted transport ------------------------------------------------------


def test_reading_one_language_sends_its_tag() -> None:
    desk = ScriptedDesk(DESK_ANSWER)
    assert client_over(desk).robot_settings("vi") == SETTINGS
    assert [(sent.api, sent.body) for sent in desk.sent] == [(READ, {"LanguageTag": "vi"})]


def test_counting_one_language_s_faq_questions_reads_desk_every_time() -> None:
    desk = ScriptedDesk({**OK, "StandardQuestionCount": 3, "AllQuestionCount": 5}, {**OK, "StandardQuestionCount": 0})
    client = client_over(desk)
    assert client.faq_count("ja") == FaqCount(standard=3, all=5)
    assert client.faq_count("ja") == FaqCount(standard=0, all=0)  # not a cached count: a removal's check
    query = {"PageIndex": 1, "PageSize": 1, "Status": 4, "LanguageTag": "ja"}
    assert [(sent.api, sent.body) for sent in desk.sent] == [("list_faq", query)] * 2


def test_the_write_sends_every_field_in_the_documented_types() -> None:
    desk = ScriptedDesk({**OK, "RequestId": "write-1"})
    changed = replace(SETTINGS, fallback_message="Sorry, try again.")
    assert client_over(desk).update_robot_settings("vi", changed) == "write-1"
    (sent,) = desk.sent
    assert sent.api == WRITE and "contenttype=json" in sent.query
    assert sent.body == {
        "WelcomeCardQuestions": ["Where is my order?", "Talk to a person"],
        "WelcomeCardEnable": 1,
        "WelcomeCardTitle": "Hi!",
        "ToAgentEnable": 0,
        "DirectAnsweringReaches": "0.56",  # a string, as documented, though Desk sent a number
        "ChitchatEnable": 1,
        "ChitchatReaches": "0.70",
        "ClarifyEnable": 0,
        "ClarifyReaches": "0.6",
        "ClarifyMessage": "Did you mean:",
        "ClarifyNumber": 3,
        "FallbackMsg": "Sorry, try again.",
        "LanguageTag": "vi",
    }


def reset_after_sending() -> requests.exceptions.ConnectionError:
    return requests.exceptions.ConnectionError(urllib3.exceptions.ProtocolError("Connection aborted."))


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (requests.exceptions.ReadTimeout("read timed out"), TransportCode.READ_TIMEOUT),
        (reset_after_sending(), TransportCode.CONNECTION_LOST),
        (502, TransportCode.HTTP_GATEWAY),
        (500, TransportCode.HTTP_STATUS),
        ({**OK, "ActionStatus": "FAIL", "ErrorCode": 70500}, 70500),  # Desk's own internal error
    ],
    ids=["read-timeout", "reset-after-sending", "http-502", "http-500", "transient-code"],
)
def test_an_ambiguous_failure_is_in_doubt_and_never_sent_again(failure: Any, code: object) -> None:
    desk = ScriptedDesk(failure, OK)  # were it sent again, the second attempt would succeed
    with pytest.raises(DeskError) as caught:
        client_over(desk).update_robot_settings("vi", SETTINGS)
    assert caught.value.code == code and write_may_have_run(caught.value)
    assert len(desk.sent) == 1


@pytest.mark.parametrize(
    "failure",
    [
        {**OK, "ActionStatus": "FAIL", "ErrorCode": -14},
        {**OK, "ActionStatus": "FAIL", "ErrorCode": 70001},
        requests.exceptions.ConnectionError(urllib3.exceptions.NewConnectionError(None, "refused")),  # type: ignore[arg-type]
    ],
    ids=["rate-limited", "usersig-expired", "never-connected"],
)
def test_a_write_that_certainly_did_not_run_is_sent_again(failure: Any) -> None:
    desk, slept = ScriptedDesk(failure, OK), []
    client_over(desk, slept).update_robot_settings("vi", SETTINGS)
    assert [sent.api for sent in desk.sent] == [WRITE, WRITE]
    assert desk.sent[0].body == desk.sent[1].body


def test_a_refusal_is_the_catalogue_s_error_and_not_in_doubt() -> None:
    desk = ScriptedDesk({**OK, "ActionStatus": "FAIL", "ErrorCode": 141004, "ErrorInfo": "no such language"}, OK)
    with pytest.raises(DeskError) as caught:
        client_over(desk).update_robot_settings("th", SETTINGS)
    assert caught.value.code == 141004 and caught.value.meaning == "Invalid parameter"
    assert "no such language" in str(caught.value) and not write_may_have_run(caught.value)
    assert len(desk.sent) == 1


def test_the_write_draws_from_its_own_limiter() -> None:
    limiters = {api: CountingLimiter() for api in (Api.UPDATE_ROBOT_CONFIG, Api.ROBOT_CONFIG, Api.ADD_LANGUAGE)}
    desk = ScriptedDesk(DESK_ANSWER, OK)
    client = client_over(desk, api_limiters=limiters)
    client.update_robot_settings("vi", client.robot_settings("vi"))
    assert {api.value: limiter.acquired for api, limiter in limiters.items()} == {
        WRITE: 1, READ: 1, "robot_add_language": 0,
    }
    assert Api.UPDATE_ROBOT_CONFIG.writes and not Api.ROBOT_CONFIG.writes


# --- e2e: against the emulator -----------------------------------------------------------------------


@pytest.fixture
def client(emulator: DeskEmulator) -> DeskClient:
    return build_desk_client(make_settings(emulator))


def test_write_then_read_back(client: DeskClient, emulator: DeskEmulator) -> None:
    before = client.robot_settings("fil")
    assert before.fallback_message == "" and before.clarify_message == CONFIGURED_SETTINGS["ClarifyMessage"]
    wanted = replace(before, fallback_message="Pasensya na.\nSubukan ulit.", welcome_card_questions=("Kumusta?",))
    client.update_robot_settings("fil", wanted)
    assert client.robot_settings("fil") == wanted
    assert client.robot_settings("vi") != wanted  # only that language changed
    (write,) = emulator.calls_of(WRITE)
    assert write.outcome == 0 and len(json.loads(write.body)) == 13  # every field, LanguageTag included


@pytest.mark.e2e
def test_the_default_language_by_its_empty_tag() -> None:
    with DeskEmulator(sample="staging") as staging:  # its default language has the tag ""
        client = build_desk_client(make_settings(staging))
        client.update_robot_settings("", replace(client.robot_settings(""), welcome_card_title="Welcome"))
        assert client.robot_settings("").welcome_card_title == "Welcome"
        assert json.loads(staging.calls_of(WRITE)[0].body)["LanguageTag"] == ""


def test_a_language_not_added_is_refused_and_nothing_changes(client: DeskClient, emulator: DeskEmulator) -> None:
    with pytest.raises(DeskError) as caught:
        client.update_robot_settings("th", replace(SETTINGS, fallback_message="x"))
    assert caught.value.code == 141004 and not write_may_have_run(caught.value)
    assert [call.outcome for call in emulator.calls_of(WRITE)] == [141004]
    assert all(client.robot_settings(tag).fallback_message != "x" for tag in ("en", "vi", "fil"))


def test_a_write_whose_answer_times_out_is_in_doubt_and_sent_once(emulator: DeskEmulator) -> None:
    quick = build_desk_client(make_settings(emulator, DESK_TIMEOUT="0.5"))  # a read would be retried
    wanted = replace(quick.robot_settings("fil"), fallback_message="Pasensya na.")
    emulator.inject(Fault(late=3.0, api=WRITE))  # applied, then answered after the client gave up
    started = time.monotonic()
    with pytest.raises(DeskError) as caught:
        quick.update_robot_settings("fil", wanted)
    assert time.monotonic() - started < 2.0
    assert caught.value.code == TransportCode.READ_TIMEOUT and write_may_have_run(caught.value)
    assert len(emulator.calls_of(WRITE)) == 1
    assert quick.robot_settings("fil") == wanted  # what reading again tells: it was applied


def test_a_gateway_error_after_the_write_is_in_doubt_and_sent_once(client: DeskClient, emulator: DeskEmulator) -> None:
    emulator.inject(Fault(http_status=502, api=WRITE), times=-1)  # a repeat would fail the same way
    with pytest.raises(DeskError) as caught:
        client.update_robot_settings("fil", replace(SETTINGS, fallback_message="x"))
    assert caught.value.code == TransportCode.HTTP_GATEWAY and write_may_have_run(caught.value)
    assert [call.outcome for call in emulator.calls_of(WRITE)] == ["http-502"]


def test_the_write_has_its_own_rate_limit(emulator: DeskEmulator) -> None:
    """Five reads fill desc_robot_config's budget; the write still goes at once; a burst of writes
    stays under 5 per second."""
    client = build_desk_client(make_settings(emulator, DESK_TIMEOUT="3"))
    current = [client.robot_settings("fil") for _ in range(5)][-1]
    client.update_robot_settings("fil", current)
    assert emulator.calls_of(WRITE)[0].at - emulator.calls_of(READ)[4].at < 0.3
    results = together([lambda: client.update_robot_settings("fil", current) for _ in range(7)])
    assert not [result for result in results if isinstance(result, Exception)]
    assert len(emulator.calls_of(WRITE)) == 8 and emulator.max_calls_in_window(1.0, api=WRITE) <= 5
    assert -14 not in {call.outcome for call in emulator.calls}


def test_a_write_invalidates_the_readiness_report(emulator: DeskEmulator) -> None:
    # The report just took the settings API's 5 permits of this second: the read waits for the
    # next window, as it may with the default DESK_TIMEOUT (2 s; the tests' 1 s is too short).
    client = build_desk_client(make_settings(emulator, DESK_TIMEOUT="2.0"))
    (filipino,) = [row for row in client.readiness().languages if row.language.tag == "fil"]
    assert filipino.flags == (Flag.NO_FALLBACK,)
    client.update_robot_settings("fil", replace(client.robot_settings("fil"), fallback_message="Pasensya na."))
    (filipino,) = [row for row in client.readiness().languages if row.language.tag == "fil"]
    assert filipino.ready


# --- e2e: python -m bot settings ----------------------------------------------------------------------


def run_cli(emulator: DeskEmulator, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(**desk_env(emulator))
    return subprocess.run([sys.executable, "-m", "bot", "settings", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_cli_settings_table_and_json(emulator: DeskEmulator, tmp_path: Path) -> None:
    emulator.set_settings("fil", {"FallbackMsg": "Pasensya na.\nSubukan ulit."})
    table = run_cli(emulator, tmp_path, "fil")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == "Filipino (fil)" and "Pasensya na.\\nSubukan ulit." in lines[2]
    assert any(line.split() == ["Direct", "answer", "threshold", "0.8"] for line in lines)
    document = json.loads(run_cli(emulator, tmp_path, "fil", "--json").stdout)
    assert document["tag"] == "fil" and document["sdkappid"] == emulator.sdkappid
    assert document["settings"]["fallback_message"] == "Pasensya na.\nSubukan ulit."
    assert document["settings"]["welcome_card_questions"] == CONFIGURED_SETTINGS["WelcomeCardQuestions"]
    assert not emulator.calls_of(WRITE)  # read-only


def test_cli_settings_refuses_a_tag_the_app_does_not_serve(emulator: DeskEmulator, tmp_path: Path) -> None:
    near_miss = run_cli(emulator, tmp_path, "tl")
    assert near_miss.returncode == 2 and near_miss.stdout == ""
    assert "tl is not a tag Desk uses. Did you mean fil (Filipino)?" in near_miss.stderr
    with DeskEmulator(sample="staging") as staging:  # "", en, ja
        missing = run_cli(staging, tmp_path, "vi")
    assert missing.returncode == 2 and "vi is not one of" in missing.stderr and 'it has: "", en, ja' in missing.stderr
    assert not emulator.calls_of(READ)


def test_cli_settings_exits_3_with_the_hint_when_desk_fails(emulator: DeskEmulator, tmp_path: Path) -> None:
    emulator.inject(Fault(code=60006, api=READ), times=-1)
    failed = run_cli(emulator, tmp_path, "fil")
    assert failed.returncode == 3 and failed.stdout == "" and "Traceback" not in failed.stderr
    assert "error: Desk error 60006" in failed.stderr
    assert "what to do: Compare DESK_SDKAPPID with the SDKAppID shown in the Chat console." in failed.stderr


def test_cli_settings_changes_the_fields_given_after_the_review(
    emulator: DeskEmulator, tmp_path: Path
) -> None:
    before = run_cli(emulator, tmp_path, "fil", "--json")
    kept = json.loads(before.stdout)["settings"]
    changed = run_cli(emulator, tmp_path, "fil", "--fallback", "Pasensya na.", "--welcome-question", "Saan?",
                      "--welcome-question", "Kailan?", "--yes")
    assert changed.returncode == 0, changed.stderr
    assert "fallback message: (empty) -> \"Pasensya na.\"" in changed.stdout
    assert "welcome card questions:" in changed.stdout and "Changed the chatbot settings of Filipino" in changed.stdout
    (write,) = emulator.calls_of(WRITE)
    sent = json.loads(write.body)
    assert sent["FallbackMsg"] == "Pasensya na." and sent["WelcomeCardQuestions"] == ["Saan?", "Kailan?"]
    assert sent["WelcomeCardTitle"] == kept["welcome_card_title"]  # what was not given is sent as Desk had it
    after = json.loads(run_cli(emulator, tmp_path, "fil", "--json").stdout)["settings"]
    assert after["fallback_message"] == "Pasensya na."
    again = run_cli(emulator, tmp_path, "fil", "--fallback", "Pasensya na.", "--yes")  # nothing to change
    assert again.returncode == 2 and "nothing to change" in again.stderr and len(emulator.calls_of(WRITE)) == 1


def test_cli_settings_refuses_over_a_limit_or_without_a_terminal_and_writes_nothing(
    emulator: DeskEmulator, tmp_path: Path
) -> None:
    many = [arg for i in range(21) for arg in ("--welcome-question", f"Q{i}")]
    over = run_cli(emulator, tmp_path, "fil", *many, "--yes")
    assert over.returncode == 2 and "at most 20" in over.stderr and "Traceback" not in over.stderr
    unconfirmed = run_cli(emulator, tmp_path, "fil", "--to-agent", "off")
    assert unconfirmed.returncode == 2 and "add --yes" in unconfirmed.stderr
    assert not emulator.calls_of(WRITE)
