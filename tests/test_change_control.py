"""Change control over real sockets: `python -m bot plan` and `apply` as processes, against the
Desk emulator, with a desk-languages.toml in their working directory (docs/change-control.md).

The file's every validation error (one line, exit 2, Desk never called); the plan's lines and exit
codes (in sync, additions, removals, settings, console-only drift, Desk failing); the JSON form's
schema, pinned; apply in Desk's order, stopping at a refusal, and a second apply that does nothing;
`status` judging by a declared app's requirements.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox.desk_emulator import DeskEmulator, Fault
from tests.support.environment import desk_env
from tests.support.served import clean_env
from tests.support.slack_harness import BotUnderTest, running_bot, texts

pytestmark = pytest.mark.e2e

WRITES = ("robot_add_language", "robot_del_language", "update_robot_config")


def run(
    emulator: DeskEmulator, cwd: Path, *args: str, toml: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    if toml is not None:
        (cwd / "desk-languages.toml").write_text(toml, encoding="utf-8")
    environ = clean_env(**desk_env(emulator, **{"DATABASE_URL": f"sqlite:///{cwd / 'bot.db'}", **env}))
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=cwd, env=environ, capture_output=True,
                          text=True, timeout=90, stdin=subprocess.DEVNULL, check=False)


def writes(emulator: DeskEmulator) -> list[tuple[str, str]]:
    """(api, tag) of every write the emulator received, in order."""
    made = []
    for call in emulator.calls:
        if call.api in WRITES:
            body = json.loads(call.body)
            made.append((call.api, str(body.get("LanguageTag"))))
    return made


def audit(cwd: Path) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(cwd / "bot.db") as db:
        return [tuple(row) for row in db.execute("SELECT who, action, tag, result FROM language_changes ORDER BY id")]


# The default sample: en (default, 12 FAQ questions), zh 10, ja 7, vi 6 (welcome card off), fil 6 (no fallback).
IN_SYNC = """
[default]
languages = ["en", "zh", "ja", "vi", "fil"]
default = "en"
"""


# --- the file -------------------------------------------------------------------------------------


VALID_APP = '[default]\nlanguages = ["en", "zh", "ja", "vi", "fil"]\n'
BAD_FILES = {
    "unknown app": ('[defualt]\nlanguages = ["en"]\n',
                    "desk-languages.toml: defualt: is not one of this bot's apps (DESK_APPS). Did you mean 'default'?"),
    "unsupported tag": ('[default]\nlanguages = ["en", "tl"]\n',
                        "desk-languages.toml: default.languages[1]: 'tl' is not a tag Desk uses. "
                        "Did you mean 'fil' (Filipino)?"),
    "not a language": ('[default]\nlanguages = ["en", "klingon"]\n',
                       "default.languages[1]: 'klingon' is not a language Desk's chatbot supports. Use one of id, zh,"),
    "twice": ('[default]\nlanguages = ["en", "vi", "vi"]\n', "default.languages[2]: 'vi' is listed twice."),
    "over the edition": ('[default]\nlanguages = ["en", "zh", "ja", "vi", "fil", "id"]\n',
                         "default.languages: lists 6 languages, and Desk allows 5 (the default counted). "
                         "Keep at most 5."),
    "default not listed": ('[default]\nlanguages = ["en", "zh"]\ndefault = "ja"\n',
                           "default.default: 'ja' is not in default.languages."),
    "no languages": ('[default]\ndefault = "en"\n', "default.languages: is missing."),
    "unknown key": ('[default]\nlangauges = ["en"]\n', "default.langauges: is not a key this file knows. "
                    "Did you mean 'languages'?"),
    "unknown requirement": (VALID_APP + "[default.require]\nfaq_ration = 0.5\n",
                            "default.require.faq_ration: is not a key this file knows. Did you mean 'faq_ratio'?"),
    "ratio out of range": (VALID_APP + "[default.require]\nfaq_ratio = 2\n",
                           "default.require.faq_ratio: 2 is not a number from 0 to 1."),
    "unknown setting": (VALID_APP + '[default.settings.fil]\nfallback = "Pasensya na"\n',
                        "default.settings.fil.fallback: is not a key this file knows. "
                        "Did you mean 'fallback_message'?"),
    "setting too long": (VALID_APP + f'[default.settings.fil]\nfallback_message = "{"x" * 1001}"\n',
                         "default.settings.fil.fallback_message: The fallback message: 1001 characters; "
                         "at most 1000."),
    "settings of an undeclared language": (VALID_APP + '[default.settings.id]\nto_agent = true\n',
                                           "default.settings.id: 'id' is not in default.languages."),
    "a quoted boolean": (VALID_APP + '[default.settings.vi]\nwelcome_card = "yes"\n',
                         "default.settings.vi.welcome_card: 'yes' is not true or false."),
    "not TOML": ('[default\nlanguages = ["en"]\n', "desk-languages.toml: is not valid TOML: "),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_every_mistake_in_the_file_is_one_line_naming_its_key_exit_2(
    case: str, emulator: DeskEmulator, tmp_path: Path
) -> None:
    text, expected = BAD_FILES[case]
    result = run(emulator, tmp_path, "plan", toml=text)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()  # one line, no traceback
    assert line.startswith("configuration error: desk-languages.toml")
    assert expected in line
    assert emulator.calls == []  # checked before Desk is asked anything


def test_the_bot_does_not_start_with_a_broken_file_and_works_as_today_without_one(
    emulator: DeskEmulator, tmp_path: Path
) -> None:
    broken = run(emulator, tmp_path, "languages", toml='[default]\nlanguages = ["en", "tl"]\n')
    assert broken.returncode == 2 and "default.languages[1]" in broken.stderr
    (tmp_path / "desk-languages.toml").unlink()
    assert run(emulator, tmp_path, "languages").returncode == 0
    missing = run(emulator, tmp_path, "plan")
    assert missing.returncode == 2
    assert missing.stderr.startswith(
        "configuration error: DESK_STATE_FILE: is not set and there is no desk-languages.toml here")
    elsewhere = run(emulator, tmp_path, "plan", DESK_STATE_FILE=str(tmp_path / "nowhere.toml"))
    assert elsewhere.returncode == 2 and "DESK_STATE_FILE: " in elsewhere.stderr and "is not a file" in elsewhere.stderr


# --- plan -----------------------------------------------------------------------------------------


def test_plan_in_sync_exits_0(emulator: DeskEmulator, tmp_path: Path) -> None:
    result = run(emulator, tmp_path, "plan", toml=IN_SYNC)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "default: in sync"
    assert writes(emulator) == []


DRIFTED = """
[default]
languages = ["en", "zh", "ja", "fil", "id"]
default = "zh"

[default.require]
faq_ratio = 0.8

[default.settings.fil]
fallback_message = "Pasensya na, hindi ko naintindihan."
"""


def test_plan_lists_removals_additions_settings_and_console_only_drift_exit_4(
    emulator: DeskEmulator, tmp_path: Path
) -> None:
    result = run(emulator, tmp_path, "plan", toml=DRIFTED)
    assert result.returncode == 4, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Plan: Desk against desk-languages.toml"
    assert lines[2:] == [
        "default: 6 differences, 1 for apply",
        "  - vi (Vietnamese): not by apply: it has 6 live FAQ questions, and Desk removes no language that has "
        "questions: remove or disable them in the console first",
        "  + id (Indonesian): not by apply: Desk allows 5 languages (the default counted), and a language above "
        "stays until it can be removed",
        '  ~ fil fallback message: (empty) -> "Pasensya na, hindi ko naintindihan."',
        "  ! default is en, declared zh (console only)",
        "  ! ja has 7 FAQ questions, under 80% of the default language's 12 (console only)",
        "  ! fil has 6 FAQ questions, under 80% of the default language's 12 (console only)",
    ]
    assert writes(emulator) == []  # plan never writes


def test_plan_of_a_removable_language_and_an_addition_that_fits(emulator: DeskEmulator, tmp_path: Path) -> None:
    emulator.set_faq("fil", [])
    result = run(emulator, tmp_path, "plan", toml='[default]\nlanguages = ["en", "zh", "ja", "vi", "id"]\n')
    assert result.returncode == 4, result.stderr
    assert result.stdout.splitlines()[2:] == [
        "default: 2 differences, 2 for apply", "  - fil (Filipino)", "  + id (Indonesian)",
    ]


def test_plan_when_desk_fails_exits_3_and_says_what_to_do(emulator: DeskEmulator, tmp_path: Path) -> None:
    emulator.inject(Fault(code=-50040), times=-1)
    result = run(emulator, tmp_path, "plan", toml=IN_SYNC)
    assert result.returncode == 3
    assert "default: Desk failed, so there is no plan: " in result.stdout and "what to do: " in result.stdout
    as_json = json.loads(run(emulator, tmp_path, "plan", "--json").stdout)
    assert as_json["apps"][0]["error"]["code"] == -50040 and as_json["in_sync"] is False


def test_an_app_the_file_does_not_declare_is_not_compared(emulator: DeskEmulator, tmp_path: Path) -> None:
    with DeskEmulator(sdkappid=1400000777, key=STAGING_KEY, sample="staging") as staging:
        two_apps = {
            "DESK_APPS": "prod,staging", "DESK_PROD_LABEL": "Production",
            "DESK_PROD_SDKAPPID": str(emulator.sdkappid), "DESK_PROD_API_URL": emulator.base_url,
            "DESK_STAGING_SDKAPPID": "1400000777", "DESK_STAGING_SECRET_KEY": STAGING_KEY,
            "DESK_STAGING_API_URL": staging.base_url,
        }
        result = run(emulator, tmp_path, "plan", toml=IN_SYNC.replace("[default]", "[prod]"), **two_apps)
        assert staging.calls == []  # not declared: not read
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[2:] == ["prod (Production): in sync",
                                              "staging: not declared in the file; nothing to compare"]


STAGING_KEY = "staging-key-0123456789abcdef"
SCHEMA_CHANGE_KEYS = ["kind", "tag", "field", "old", "new", "applies", "why_not", "text"]


def test_the_json_plan_schema_is_stable(emulator: DeskEmulator, tmp_path: Path) -> None:
    """Pinned: CI jobs read it. A change here is a change of `schema` (docs/change-control.md)."""
    result = run(emulator, tmp_path, "plan", "--json", toml=DRIFTED)
    assert result.returncode == 4
    document = json.loads(result.stdout)
    assert list(document) == ["schema", "file", "in_sync", "apps"]
    assert document["schema"] == 1 and document["file"] == "desk-languages.toml" and document["in_sync"] is False
    (app,) = document["apps"]
    assert list(app) == ["app", "sdkappid", "declared", "in_sync", "checked_at", "error", "changes"]
    assert app["app"] == "default" and app["declared"] is True and app["error"] is None
    assert isinstance(app["sdkappid"], int) and isinstance(app["checked_at"], float)
    kinds: list[tuple[Any, ...]] = []
    for change in app["changes"]:
        assert list(change) == SCHEMA_CHANGE_KEYS
        assert isinstance(change["applies"], bool) and isinstance(change["text"], str)
        kinds.append((change["kind"], change["tag"], change["field"], change["applies"]))
    assert kinds == [
        ("remove", "vi", None, False), ("add", "id", None, False), ("settings", "fil", "fallback_message", True),
        ("attention", "zh", "default", False), ("attention", "ja", "faq", False), ("attention", "fil", "faq", False),
    ]
    settings = app["changes"][2]
    assert settings["old"] == "" and settings["new"] == "Pasensya na, hindi ko naintindihan."
    assert app["changes"][3]["old"] == "en" and app["changes"][3]["new"] == "zh"


# --- apply ----------------------------------------------------------------------------------------


ORDERED = """
[default]
languages = ["en", "zh", "ja", "vi", "id"]

[default.settings.id]
fallback_message = "Maaf, saya tidak mengerti."
welcome_card = true
welcome_card_questions = ["Di mana pesanan saya?"]

[default.settings.vi]
welcome_card = true
"""


def test_apply_removes_then_adds_then_sets_and_a_second_apply_does_nothing(
    emulator: DeskEmulator, tmp_path: Path
) -> None:
    emulator.set_faq("fil", [])  # removable; the app is at the edition's limit of 5
    refused = run(emulator, tmp_path, "apply", toml=ORDERED)
    assert refused.returncode == 2 and "--yes" in refused.stderr and writes(emulator) == []

    first = run(emulator, tmp_path, "apply", "--yes")
    assert first.returncode == 0, first.stdout + first.stderr
    assert writes(emulator) == [
        ("robot_del_language", "fil"), ("robot_add_language", "id"),
        ("update_robot_config", "id"), ("update_robot_config", "vi"),  # settings in the file's order
    ]
    assert [tag for tag, _ in emulator.languages] == ["en", "zh", "ja", "vi", "id"]
    assert "Applying to default:" in first.stdout and "Applied." in first.stdout
    who = {row[0] for row in audit(tmp_path)}
    assert len(who) == 1 and next(iter(who)).startswith("apply:")
    assert [row[1:] for row in audit(tmp_path)] == [
        ("remove", "fil", "applied"), ("add", "id", "applied"),
        ("settings", "id", "applied"), ("settings", "vi", "applied"),
    ]

    again = run(emulator, tmp_path, "apply", "--yes")
    assert again.returncode == 0, again.stderr
    assert "default: in sync" in again.stdout and "Nothing to apply." in again.stdout
    assert len(writes(emulator)) == 4 and len(audit(tmp_path)) == 4
    assert run(emulator, tmp_path, "plan").returncode == 0


def test_apply_stops_at_the_first_refusal_and_says_what_remains(emulator: DeskEmulator, tmp_path: Path) -> None:
    emulator.set_faq("fil", [])
    emulator.inject(Fault(code=-50052, api="robot_add_language"))
    stopped = run(emulator, tmp_path, "apply", "--yes", toml=ORDERED)
    assert stopped.returncode == 3, stopped.stdout + stopped.stderr
    assert writes(emulator) == [("robot_del_language", "fil"), ("robot_add_language", "id")]
    out = stopped.stdout
    assert "stopped: Indonesian (id) was not added: Over the number of languages this edition allows." in out
    assert "Stopped after 1 step; 5 changes remain:" in out
    remaining = out[out.index("changes remain:"):].splitlines()[1:]
    assert [line.split(":")[0] for line in remaining] == [
        "  + id (Indonesian)", "  ~ id fallback message", "  ~ id welcome card", "  ~ id welcome card questions",
        "  ~ vi welcome card",
    ]
    assert [row[1:] for row in audit(tmp_path)] == [("remove", "fil", "applied"), ("add", "id", "not-applied")]

    resumed = run(emulator, tmp_path, "apply", "--yes")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert writes(emulator)[2:] == [
        ("robot_add_language", "id"), ("update_robot_config", "id"), ("update_robot_config", "vi"),
    ]
    assert run(emulator, tmp_path, "plan").returncode == 0


def test_apply_leaves_console_only_drift_and_exits_0(emulator: DeskEmulator, tmp_path: Path) -> None:
    result = run(emulator, tmp_path, "apply", "--yes", toml=DRIFTED)
    assert result.returncode == 0, result.stdout + result.stderr
    assert writes(emulator) == [("update_robot_config", "fil")]
    assert "Left for the Tencent console" in result.stdout
    after = run(emulator, tmp_path, "plan")
    assert after.returncode == 4 and "for apply" in after.stdout and ", 0 for apply" in after.stdout


# --- status ---------------------------------------------------------------------------------------


def test_status_judges_by_the_declared_requirements(emulator: DeskEmulator, tmp_path: Path) -> None:
    def flags() -> dict[str, list[str]]:
        result = run(emulator, tmp_path, "status", "--json")
        return {row["tag"]: row["flags"] for row in json.loads(result.stdout)["languages"]}

    assert flags()["ja"] == []  # the built-in rules: half of en's 12
    (tmp_path / "desk-languages.toml").write_text(
        IN_SYNC + "[default.require]\nfaq_ratio = 0.8\nwelcome_card = false\n", encoding="utf-8")
    judged = flags()
    assert judged["ja"] == ["few-faq"] and judged["vi"] == ["few-faq"]  # 7 and 6 of 12, under 80%
    assert "no-welcome-card" not in judged["vi"]  # not required any more


def test_status_on_the_terminal_has_slack_s_line_on_the_declared_state(emulator: DeskEmulator, tmp_path: Path) -> None:
    """The line Slack's `status` and the Home tab show (test below), on the terminal and in --json."""
    without = run(emulator, tmp_path, "status")
    assert without.returncode == 0 and "desk-languages.toml" not in without.stdout
    in_sync = run(emulator, tmp_path, "status", toml=IN_SYNC)
    assert in_sync.returncode == 0, in_sync.stderr
    summary, line = in_sync.stdout.splitlines()[-2:]
    assert summary.startswith("3 of 5 languages ready") and line == "In sync with desk-languages.toml."
    emulator.set_languages([("en", 1), ("zh", 0), ("ja", 0), ("vi", 0)])  # fil removed in the console
    drifted = run(emulator, tmp_path, "status")
    assert drifted.stdout.splitlines()[-1] == "Differs from desk-languages.toml: + fil. plan shows the details."
    as_json = json.loads(run(emulator, tmp_path, "status", "--json").stdout)
    assert as_json["drift"] == "Differs from desk-languages.toml: + fil. plan shows the details."
    emulator.inject(Fault(code=70500, api="list_faq"), times=-1)
    failed = run(emulator, tmp_path, "status")
    assert failed.returncode == 3
    assert "Not compared with desk-languages.toml: a check failed (plan reads Desk again)." in failed.stdout


def test_plan_of_one_app_reads_and_shows_only_that_app(emulator: DeskEmulator, tmp_path: Path) -> None:
    with DeskEmulator(sdkappid=1400000777, key=STAGING_KEY, sample="staging") as staging:
        two_apps = {
            "DESK_APPS": "prod,staging", "DESK_PROD_SDKAPPID": str(emulator.sdkappid),
            "DESK_PROD_API_URL": emulator.base_url, "DESK_STAGING_SDKAPPID": "1400000777",
            "DESK_STAGING_SECRET_KEY": STAGING_KEY, "DESK_STAGING_API_URL": staging.base_url,
        }
        both = IN_SYNC.replace("[default]", "[prod]") + '\n[staging]\nlanguages = ["", "en", "ja", "vi"]\n'
        result = run(emulator, tmp_path, "plan", "--app", "staging", toml=both, **two_apps)
        assert result.returncode == 4, result.stderr
        assert result.stdout.splitlines()[2:] == ["staging: 1 difference, 1 for apply", "  + vi (Vietnamese)"]
        assert emulator.calls == [] and staging.calls  # prod is neither read nor shown
        as_json = json.loads(run(emulator, tmp_path, "plan", "--app", "staging", "--json", **two_apps).stdout)
        assert [app["app"] for app in as_json["apps"]] == ["staging"] and emulator.calls == []
        unknown = run(emulator, tmp_path, "plan", "--app", "stagign", **two_apps)
        assert unknown.returncode == 2 and unknown.stderr.startswith("configuration error: --app: 'stagign'")
        assert "staging" in unknown.stderr.splitlines()[0] and len(unknown.stderr.splitlines()) == 1


# --- in Slack -------------------------------------------------------------------------------------


def slack_bot(desk: DeskEmulator, state: Path | None, **env: str) -> Iterator[BotUnderTest]:
    yield from running_bot(desk, DESK_STATE_FILE=str(state) if state else "none", **env)


@pytest.fixture
def declared_file(tmp_path: Path) -> Path:
    path = tmp_path / "desk-languages.toml"
    path.write_text(IN_SYNC + '\n[default.settings.fil]\nfallback_message = "Pasensya na."\n', encoding="utf-8")
    return path


def answer(bot: BotUnderTest, text: str) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    reply = bot.command(text)
    assert reply.status == 200 and reply.elapsed < 3.0
    if reply.ack is not None and "Comparing" not in str(reply.ack) and "Checking" not in str(reply.ack):
        return reply.ack, reply.ack
    return reply.ack, bot.reply(reply.name, timeout=15)


def test_slack_plan_lists_the_differences_and_keeps_desk_text_as_data(
    emulator: DeskEmulator, declared_file: Path
) -> None:
    emulator.set_settings("fil", {"FallbackMsg": "<!channel> <https://evil.example|click> *now*"})
    for bot in slack_bot(emulator, declared_file):
        ack, plan = answer(bot, "plan")
        assert ack is not None and "Comparing Desk with the declared languages" in texts(ack)
        shown = texts(plan)
        assert "*SDKAppID 1400000001*: :warning: 1 difference, 1 for apply" in shown
        assert '`~` fil fallback message: "&lt;!channel&gt; &lt;https://evil.example|click&gt; *now*" → ' \
               '"Pasensya na."' in shown
        assert "<!channel>" not in json.dumps(plan) and "<https://evil" not in json.dumps(plan)
        assert "`desk-languages.toml`" in shown and "python -m bot apply" in shown
        assert writes(emulator) == []


def test_status_and_the_home_tab_say_whether_the_app_is_in_sync(emulator: DeskEmulator, tmp_path: Path) -> None:
    from bot.sandbox.slack_emulator import SANDBOX_USER_ID, sign
    from tests.support.slack_harness import SIGNING_SECRET, event_body

    path = tmp_path / "desk-languages.toml"
    path.write_text(IN_SYNC, encoding="utf-8")
    for bot in slack_bot(emulator, path):
        _, report = answer(bot, "status")
        assert ":white_check_mark: In sync with `desk-languages.toml`." in texts(report)
        emulator.set_languages([("en", 1), ("zh", 0), ("ja", 0), ("vi", 0)])  # fil removed in the console
        time.sleep(1.1)  # a refresh accepts a report made less than a second ago
        _, drifted = answer(bot, "status refresh")
        assert ":warning: Differs from `desk-languages.toml`: `+ fil`. `plan` shows the details." in texts(drifted)

        body = event_body({"type": "app_home_opened", "user": SANDBOX_USER_ID, "channel": "D0X", "tab": "home"})
        assert bot.post(body, {**sign(SIGNING_SECRET, body), "Content-Type": "application/json"}).status_code == 200
        assert bot.slack.wait_for(lambda fake: bool(fake.calls("views.publish")), timeout=10)
        view = json.dumps(bot.slack.calls("views.publish")[0].body["view"])
        assert "Differs from `desk-languages.toml`: `+ fil`" in view


def test_without_a_file_slack_plan_says_so_and_status_has_no_drift_line(emulator: DeskEmulator) -> None:
    for bot in slack_bot(emulator, None):
        _, plan = answer(bot, "plan")
        assert "No languages are declared for this bot" in texts(plan)
        _, report = answer(bot, "status")
        assert "desk-languages.toml" not in texts(report) and "3 of 5 languages ready" in texts(report)


def test_a_change_from_slack_or_the_command_line_that_drifts_says_so_in_its_confirmation(
    emulator: DeskEmulator, tmp_path: Path
) -> None:
    from bot.sandbox.slack_emulator import SANDBOX_USER_ID
    from tests.support.slack_harness import command_as

    emulator.set_languages([("en", 1), ("zh", 0), ("ja", 0), ("vi", 0)])  # fil removed in the console
    emulator.set_faq("vi", [])  # removable
    path = tmp_path / "desk-languages.toml"
    path.write_text('[default]\nlanguages = ["en", "zh", "ja", "vi", "fil"]\n', encoding="utf-8")
    for bot in slack_bot(emulator, path, DESK_ADMINS=SANDBOX_USER_ID):
        removal = texts(command_as(bot, SANDBOX_USER_ID, "remove vi"))
        assert "`desk-languages.toml` declares it: the next `apply` adds it back." in removal
        addition = texts(command_as(bot, SANDBOX_USER_ID, "add id"))
        assert "Not in `desk-languages.toml`: the next `apply` removes it." in addition
        in_line = texts(command_as(bot, SANDBOX_USER_ID, "add fil"))
        assert "Add Filipino" in in_line and "desk-languages.toml" not in in_line  # as declared: no note
    assert writes(emulator) == []  # nothing confirmed

    cli = run(emulator, tmp_path, "add", "id", "--yes")
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.startswith("note: Not in desk-languages.toml: the next apply removes it.")


def test_a_digest_carries_one_drift_line(emulator: DeskEmulator, tmp_path: Path) -> None:
    from bot.boot import build_cli_digests
    from bot.sandbox.slack_emulator import FakeSlack
    from tests.support.environment import make_settings

    path = tmp_path / "desk-languages.toml"
    path.write_text('[default]\nlanguages = ["en", "zh", "ja", "vi", "id"]\n', encoding="utf-8")
    with FakeSlack() as slack:
        settings = make_settings(emulator, DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}", SLACK_BOT_TOKEN=slack.token,
                                 SLACK_API_URL=slack.api_url, DESK_STATE_FILE=str(path))
        service = build_cli_digests(settings)
        assert service.post_now("C0DIGEST", None).ts
        (digest,) = slack.messages("C0DIGEST")
    drift = [block for block in digest["blocks"] if "desk-languages.toml" in json.dumps(block)]
    assert len(drift) == 1
    assert ":warning: Differs from `desk-languages.toml`: `- fil`, `+ id`." in json.dumps(drift[0], ensure_ascii=False)


def test_a_write_whose_record_the_database_loses_is_said_logged_and_stops_apply(
    emulator: DeskEmulator, tmp_path: Path
) -> None:
    """The write is made before the record: with the database gone then, the change is not lost
    silently. It is in the log with every field of its audit entry, the command says it is not in
    the audit trail (exit 1, no traceback, no password), and apply writes nothing more."""
    emulator.set_faq("fil", [])
    down = "postgresql+psycopg://bot:s3cret-pw@127.0.0.1:1/bot"  # nothing listens on port 1
    result = run(emulator, tmp_path, "apply", "--yes", toml=ORDERED, DATABASE_URL=down)
    assert result.returncode == 3, result.stdout + result.stderr
    assert writes(emulator) == [("robot_del_language", "fil")]  # and nothing after it
    assert "  - Filipino (fil) was deleted.\n  stopped: The change reached Desk, but the bot's database did not " \
           "answer, so it is not in the audit trail" in result.stdout
    assert "language change NOT RECORDED in the database" in result.stderr
    assert " remove fil in default " in result.stderr
    assert "Traceback" not in result.stderr and "s3cret-pw" not in result.stdout + result.stderr

    added = run(emulator, tmp_path, "add", "id", "--yes", DATABASE_URL=down)
    assert added.returncode == 1 and "Indonesian (id) was added." in added.stdout
    assert "error: The change reached Desk, but the bot's database did not answer" in added.stderr
    assert "Traceback" not in added.stderr and "s3cret-pw" not in added.stdout + added.stderr
