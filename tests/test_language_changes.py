"""Adding and removing languages from Slack, end to end over real sockets: the Desk emulator, the real
Slack app on loopback, FakeSlack (with usergroups.users.list), signed commands and signed clicks."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bot.desk.errors import desk_error
from bot.management.messages import CANCEL_ACTION, CONFIRM_ACTION
from bot.sandbox.desk_emulator import SANDBOX_KEY, DeskEmulator, Fault
from bot.sandbox.desk_samples import questions
from bot.sandbox.slack_emulator import SANDBOX_USER_ID, FakeSlack, block_action_body, sign
from bot.slack.blocks import escape
from tests.support.environment import make_settings
from tests.support.slack_harness import (
    BOT_TOKEN,
    SIGNING_SECRET,
    BotUnderTest,
    button,
    click,
    command_as,
    slack_env,
    texts,
)
from tests.support.tiers import e2e_fixture

ADMIN = SANDBOX_USER_ID  # the harness's commands come from this user
OTHER = "U0NOTADMIN"
GROUP, GROUP_MEMBER = "S0LANGOPS", "U0GROUPIE"
AUDIT = "C0AUDIT"


@e2e_fixture
def desk() -> Iterator[DeskEmulator]:
    with DeskEmulator(languages=[("en", 1), ("zh", 0), ("ja", 0)], rate_limit=50) as emulator:
        yield emulator


def start(desk: DeskEmulator, slack: FakeSlack, **env: str) -> BotUnderTest:
    environ = {"DESK_ADMINS": f"{ADMIN},{GROUP}", "DESK_AUDIT_CHANNEL": AUDIT, **env}
    return BotUnderTest(make_settings(desk, **slack_env(slack, **environ)), slack, desk)


@e2e_fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=BOT_TOKEN) as fake:
        fake.usergroups[GROUP] = [GROUP_MEMBER]
        yield fake


@pytest.fixture
def bot(desk: DeskEmulator, slack: FakeSlack) -> Iterator[BotUnderTest]:
    served = start(desk, slack)
    yield served
    served.close()


def writes(desk: DeskEmulator) -> list[str]:
    return [call.api for call in desk.calls if call.api in ("robot_add_language", "robot_del_language")]


# --- the happy paths -------------------------------------------------------------------------------


def test_an_admin_adds_a_language_end_to_end(bot: BotUnderTest, desk: DeskEmulator, slack: FakeSlack) -> None:
    confirmation = command_as(bot, ADMIN, "add vi")
    shown = texts(confirmation)
    assert "Add Vietnamese (`vi`) to" in shown and "SDKAppID" in shown and "production at once" in shown
    assert button(confirmation, CONFIRM_ACTION)["style"] == "primary"
    assert writes(desk) == []  # nothing is sent before the click
    reply = click(bot, confirmation, CONFIRM_ACTION)
    assert reply.status == 200 and reply.elapsed < 3.0
    (result,) = bot.replies(reply.name)
    assert result.get("replace_original") is True
    assert "Vietnamese (vi) was added." in texts(result) and "• Vietnamese (`vi`)" in texts(result)
    assert writes(desk) == ["robot_add_language"]
    assert ("vi", 0) in desk.languages
    (line,) = slack.messages(AUDIT)
    assert f"<@{ADMIN}> added Vietnamese" in texts(line) and "applied" in texts(line)
    history = texts(command_as(bot, ADMIN, "history"))
    assert "added Vietnamese (`vi`)" in history and "applied" in history


def test_removing_asks_for_a_danger_confirmation_and_removes(bot: BotUnderTest, desk: DeskEmulator) -> None:
    desk.set_faq("ja", [])  # Desk refuses to delete a language that still has FAQ questions (-50056)
    confirmation = command_as(bot, ADMIN, "remove ja")
    assert len(faq_reads(desk, "ja")) == 1  # counted before offering: none live, so it is offered
    confirm = button(confirmation, CONFIRM_ACTION)
    assert confirm["style"] == "danger" and confirm["confirm"]["title"]["text"] == "Remove a language?"
    result = bot.reply(click(bot, confirmation, CONFIRM_ACTION).name)
    assert "Japanese (ja) was deleted." in texts(result)
    assert ("ja", 0) not in desk.languages and writes(desk) == ["robot_del_language"]


def faq_reads(desk: DeskEmulator, tag: str) -> list[dict[str, object]]:
    """The list_faq bodies the bot sent for the language `tag`."""
    bodies = [json.loads(call.body) for call in desk.calls_of("list_faq")]
    return [body for body in bodies if body.get("LanguageTag") == tag]


def has_button(message: dict[str, object], action_id: str) -> bool:
    return action_id in json.dumps(message)


def test_removing_a_language_with_live_faq_questions_is_refused_before_any_confirmation(
    bot: BotUnderTest, desk: DeskEmulator
) -> None:
    desk.set_faq("ja", [*questions("ja", 3), *questions("ja", 0, disabled=2)])  # 3 live, 2 disabled
    answer = command_as(bot, ADMIN, "remove ja")
    shown = texts(answer)
    assert "Japanese (`ja`) still has 3 live FAQ questions" in shown and "-50056" in shown
    assert "Remove or disable its FAQ questions in the Tencent console" in shown
    assert not has_button(answer, CONFIRM_ACTION) and not has_button(answer, CANCEL_ACTION)
    assert faq_reads(desk, "ja") == [{"PageIndex": 1, "PageSize": 1, "Status": 4, "LanguageTag": "ja"}]
    assert writes(desk) == [] and ("ja", 0) in desk.languages


def test_removing_is_not_offered_when_the_faq_questions_cannot_be_counted(
    bot: BotUnderTest, desk: DeskEmulator
) -> None:
    desk.set_faq("ja", [])
    desk.inject(Fault(code=-20, api="list_faq"))
    answer = command_as(bot, ADMIN, "remove ja")
    shown = texts(answer)
    assert "Couldn't read Japanese (`ja`)'s FAQ questions" in shown and escape(desk_error(-20).hint) in shown
    assert not has_button(answer, CONFIRM_ACTION) and writes(desk) == []


def test_the_click_counts_the_faq_questions_again(bot: BotUnderTest, desk: DeskEmulator) -> None:
    desk.set_faq("ja", [])
    cannot_count, added_since = command_as(bot, ADMIN, "remove ja"), command_as(bot, ADMIN, "remove ja")
    desk.inject(Fault(code=-20, api="list_faq"))
    shown = texts(bot.reply(click(bot, cannot_count, CONFIRM_ACTION).name))
    assert "Couldn't read Japanese (`ja`)'s FAQ questions to check again" in shown
    assert "this confirmation still works" in shown and writes(desk) == []
    desk.set_faq("ja", questions("ja", 1))  # someone adds a question in the console meanwhile
    shown = texts(bot.reply(click(bot, added_since, CONFIRM_ACTION).name))
    assert "Japanese (`ja`) still has 1 live FAQ question," in shown and "Nothing was sent to Desk" in shown
    assert writes(desk) == [] and ("ja", 0) in desk.languages
    spent = texts(bot.reply(click(bot, added_since, CONFIRM_ACTION).name))
    assert "the language's FAQ questions, changed since this was asked" in spent
    desk.set_faq("ja", [])  # the questions removed again: the confirmation the failed read left usable works
    assert "Japanese (ja) was deleted." in texts(bot.reply(click(bot, cannot_count, CONFIRM_ACTION).name))
    assert writes(desk) == ["robot_del_language"]


def test_a_group_member_is_an_admin_through_usergroups(bot: BotUnderTest, desk: DeskEmulator, slack: FakeSlack) -> None:
    confirmation = command_as(bot, GROUP_MEMBER, "add vi")
    assert "Add Vietnamese" in texts(confirmation)
    bot.reply(click(bot, confirmation, CONFIRM_ACTION, user=GROUP_MEMBER).name)
    assert writes(desk) == ["robot_add_language"]
    assert len(slack.calls("usergroups.users.list")) == 1  # cached across the command and the click


# --- who may -------------------------------------------------------------------------------------------


def test_a_non_admin_command_is_refused_naming_who_can(bot: BotUnderTest, desk: DeskEmulator) -> None:
    shown = texts(command_as(bot, OTHER, "add vi"))
    assert "Only these people can change" in shown and f"<@{ADMIN}>" in shown and f"<!subteam^{GROUP}>" in shown
    assert desk.calls == []


def test_a_non_admin_click_is_refused_and_leaves_the_confirmation_usable(bot: BotUnderTest, desk: DeskEmulator) -> None:
    confirmation = command_as(bot, ADMIN, "add vi")
    refused = bot.reply(click(bot, confirmation, CONFIRM_ACTION, user=OTHER).name)
    assert "Only these people" in texts(refused) and writes(desk) == []
    bot.reply(click(bot, confirmation, CONFIRM_ACTION).name)
    assert writes(desk) == ["robot_add_language"]


def test_a_non_admin_cancel_is_refused_and_the_admin_can_still_confirm(bot: BotUnderTest, desk: DeskEmulator) -> None:
    confirmation = command_as(bot, ADMIN, "add vi")
    refused = texts(bot.reply(click(bot, confirmation, CANCEL_ACTION, user=OTHER).name))
    assert f"Only the person who asked (<@{ADMIN}>) or an admin of" in refused and "can cancel this" in refused
    assert "Cancelled" not in refused and writes(desk) == []
    result = bot.reply(click(bot, confirmation, CONFIRM_ACTION).name)
    assert "Vietnamese (vi) was added." in texts(result) and writes(desk) == ["robot_add_language"]


def test_the_requester_or_another_admin_may_cancel(desk: DeskEmulator, slack: FakeSlack, tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    # Two processes on one database; the second no longer counts the group as admins (a config
    # change within the 10 minutes): its member asked on the first, so may still cancel on the second.
    one, two = start(desk, slack, DATABASE_URL=database), start(desk, slack, DATABASE_URL=database, DESK_ADMINS=ADMIN)
    try:
        asked = command_as(one, GROUP_MEMBER, "add vi", prefix="one")
        refused = texts(two.reply(click(two, asked, CANCEL_ACTION, user=OTHER, prefix="two").name))
        assert f"Only the person who asked (<@{GROUP_MEMBER}>)" in refused
        assert "nothing was sent to Desk" in texts(two.reply(click(two, asked, CANCEL_ACTION, user=GROUP_MEMBER).name))
        by_admin = command_as(one, GROUP_MEMBER, "add vi", prefix="one")
        assert "nothing was sent to Desk" in texts(two.reply(click(two, by_admin, CANCEL_ACTION, user=ADMIN).name))
    finally:
        one.close()
        two.close()
    assert writes(desk) == []


@pytest.mark.parametrize(("value", "instead"), [("", ""), ("None", " instead of `none`")])
def test_without_admins_management_is_off_and_says_which_variable(
    desk: DeskEmulator, slack: FakeSlack, value: str, instead: str
) -> None:
    bot = start(desk, slack, DESK_ADMINS=value)  # unset, or `none` (off on purpose)
    try:
        shown = texts(command_as(bot, ADMIN, "add vi"))
    finally:
        bot.close()
    assert "is off" in shown and desk.calls == []
    assert f"set `DESK_ADMINS` to the Slack user or user-group IDs who may do it{instead}." in shown


# --- validation before anything is sent -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("add zh-CN", "Did you mean `zh`"),
        ("add tl", "Did you mean `fil`"),
        ("add vietnamese", "Did you mean `vi`"),
        ("add klingon", "not a language Desk's chatbot supports"),
        ("add ja", "already one of the chatbot's languages"),
        ("remove vi", "not one of the chatbot's languages"),
        ("remove en", "is the default language"),
        ("add", "Name the language to add"),
    ],
)
def test_validation_answers_before_any_write(bot: BotUnderTest, desk: DeskEmulator, text: str, says: str) -> None:
    assert says in texts(command_as(bot, ADMIN, text))
    assert writes(desk) == []


def test_adding_past_the_limit_says_how_many_and_the_limit(bot: BotUnderTest, desk: DeskEmulator) -> None:
    desk.set_languages([("en", 1), ("zh", 0), ("ja", 0), ("id", 0), ("fil", 0)])
    bot.command("refresh")  # the bot sees the full list
    shown = texts(command_as(bot, ADMIN, "add vi"))
    assert "has 5 languages" in shown and "allows 5" in shown and writes(desk) == []


# --- one effect per intent --------------------------------------------------------------------------------


def test_a_double_click_writes_once(bot: BotUnderTest, desk: DeskEmulator) -> None:
    confirmation = command_as(bot, ADMIN, "add vi")
    first, second = click(bot, confirmation, CONFIRM_ACTION), click(bot, confirmation, CONFIRM_ACTION)
    answers = [texts(bot.reply(first.name)), texts(bot.reply(second.name))]
    assert writes(desk) == ["robot_add_language"]
    assert sum("was added" in a for a in answers) == 1 and sum("already confirmed" in a for a in answers) == 1


def test_two_processes_clicking_the_same_confirmation_write_once(
    desk: DeskEmulator, slack: FakeSlack, tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    one, two = start(desk, slack, DATABASE_URL=database), start(desk, slack, DATABASE_URL=database)
    try:
        confirmation = command_as(one, ADMIN, "add vi", prefix="one")
        value = button(confirmation, CONFIRM_ACTION)["value"]
        bodies = [
            (served, name, block_action_body(CONFIRM_ACTION, response_url=slack.response_url(name), value=value))
            for served, name in ((one, "p1"), (two, "p2"), (one, "p3"), (two, "p4"))
        ]
        threads = [threading.Thread(target=served.send, args=(body, name)) for served, name, body in bodies]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        answers = [texts(one.reply(name)) for _, name, _ in bodies]
    finally:
        one.close()
        two.close()
    assert writes(desk) == ["robot_add_language"]
    assert sum("was added" in a for a in answers) == 1


def test_an_expired_confirmation_is_refused(desk: DeskEmulator, slack: FakeSlack) -> None:
    bot = start(desk, slack)
    try:
        confirmation = command_as(bot, ADMIN, "add vi")
        manager = bot.deps.manager
        assert manager is not None
        real_clock = manager._clock
        manager._clock = lambda: real_clock() + 601  # ten minutes and a second later
        shown = texts(bot.reply(click(bot, confirmation, CONFIRM_ACTION).name))
    finally:
        bot.close()
    assert "expired" in shown and writes(desk) == []


def test_cancel_sends_nothing_and_the_confirmation_is_spent(bot: BotUnderTest, desk: DeskEmulator) -> None:
    desk.set_faq("ja", [])
    confirmation = command_as(bot, ADMIN, "remove ja")
    assert "nothing was sent to Desk" in texts(bot.reply(click(bot, confirmation, CANCEL_ACTION).name))
    assert ("ja", 0) in desk.languages
    assert "was cancelled" in texts(bot.reply(click(bot, confirmation, CONFIRM_ACTION).name))
    assert writes(desk) == []


def test_a_lost_answer_is_not_repeated_and_the_list_is_read_again(
    bot: BotUnderTest, desk: DeskEmulator, slack: FakeSlack
) -> None:
    confirmation = command_as(bot, ADMIN, "add vi")
    desk.inject(Fault(late=3.0, api="robot_add_language"))  # applied, but the answer comes too late
    result = bot.reply(click(bot, confirmation, CONFIRM_ACTION).name, timeout=10)
    assert "the list read again shows Vietnamese (vi) was added" in texts(result)
    assert writes(desk) == ["robot_add_language"]  # never sent twice
    assert "applied" in texts(slack.messages(AUDIT)[0])


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        (-50042, "advanced edition"),
        (-50051, "zh-TW"),
        (-50052, "5"),
        (-50055, "default"),
        (-50056, "knowledge base"),
    ],
)
def test_each_private_code_gets_its_hint(bot: BotUnderTest, desk: DeskEmulator, code: int, hint: str) -> None:
    confirmation = command_as(bot, ADMIN, "add vi")
    desk.inject(Fault(code=code, api="robot_add_language"))
    shown = texts(bot.reply(click(bot, confirmation, CONFIRM_ACTION).name))
    assert "was not added" in shown and f"`{code}`" in shown and hint in shown
    assert "not-applied" in texts(command_as(bot, ADMIN, "history"))


def test_the_cache_is_invalidated_across_two_processes_sharing_redis(
    desk: DeskEmulator, slack: FakeSlack, redis_url: str, tmp_path: Path
) -> None:
    env = {"REDIS_URL": redis_url, "DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}"}
    one, two = start(desk, slack, **env), start(desk, slack, **env)
    try:
        assert "Vietnamese" not in texts(two.warm())  # process two holds the list without vi
        confirmation = command_as(one, ADMIN, "add vi", prefix="one")
        one.reply(click(one, confirmation, CONFIRM_ACTION, prefix="one").name)
        after = two.command("", name="two-after")
        shown = texts(after.ack) if after.ack is not None else texts(two.reply(after.name))
    finally:
        one.close()
        two.close()
    assert "Vietnamese" in shown


def test_no_secret_in_audit_lines_or_logs(
    bot: BotUnderTest, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    confirmation = command_as(bot, ADMIN, "add vi")
    bot.reply(click(bot, confirmation, CONFIRM_ACTION).name)
    audit = json.dumps([m for m in slack.messages(AUDIT)])
    history = json.dumps(command_as(bot, ADMIN, "history"))
    for secret in (BOT_TOKEN, SIGNING_SECRET, SANDBOX_KEY):
        assert secret not in audit and secret not in history and secret not in caplog.text


def test_an_unsigned_click_is_refused_before_anything(bot: BotUnderTest, desk: DeskEmulator) -> None:
    body = block_action_body(CONFIRM_ACTION, response_url=bot.slack.response_url("x"), value="anything")
    forged = requests.post(
        f"{bot.url}/slack/events", data=body, headers=sign("not-the-secret", body), timeout=5
    )
    assert forged.status_code == 401 and desk.calls == []


# --- the command line -----------------------------------------------------------------------------------


def test_cli_add_with_yes_applies_once_and_is_audited(desk: DeskEmulator, tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.support.environment import desk_env
    from tests.support.served import clean_env

    env = clean_env(**desk_env(desk, DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}"))
    refused = subprocess.run(
        [sys.executable, "-m", "bot", "add", "vi"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=60, stdin=subprocess.DEVNULL, check=False,
    )
    assert refused.returncode == 2 and "--yes" in refused.stderr and writes(desk) == []
    done = subprocess.run(
        [sys.executable, "-m", "bot", "add", "vi", "--yes"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Vietnamese (vi) was added." in done.stdout and writes(desk) == ["robot_add_language"]
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT who, action, tag, result FROM language_changes")).all()
    assert len(rows) == 1 and rows[0][0].startswith("cli:") and tuple(rows[0][1:]) == ("add", "vi", "applied")


def test_cli_remove_refuses_a_language_with_faq_questions_and_one_it_cannot_count(
    desk: DeskEmulator, tmp_path: Path
) -> None:
    import subprocess
    import sys

    from tests.support.environment import desk_env
    from tests.support.served import clean_env

    env = clean_env(**desk_env(desk, DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}"))

    def remove_ja() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", "remove", "ja", "--yes"], cwd=tmp_path, env=env, capture_output=True,
            text=True, timeout=60, check=False,
        )

    desk.set_faq("ja", questions("ja", 2))
    refused = remove_ja()
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "Japanese (ja) still has 2 live FAQ questions" in refused.stderr and "console" in refused.stderr
    desk.set_faq("ja", [])
    desk.inject(Fault(code=-20, api="list_faq"))
    unknown = remove_ja()
    assert unknown.returncode == 3 and "Couldn't read Japanese (ja)'s FAQ questions" in unknown.stderr
    assert desk_error(-20).hint in unknown.stderr
    assert writes(desk) == [] and ("ja", 0) in desk.languages
