"""A language's chatbot settings changed from Slack in a modal, end to end over real sockets: the
Desk emulator, the real Slack app on loopback, FakeSlack with Slack's modal rules (trigger_ids
once and for 3 s, view ids and hashes), signed commands, clicks and view submissions."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest

from bot.management.settings_form import (
    AGENT_BLOCK,
    CARD_BLOCK,
    FALLBACK_BLOCK,
    MAX_QUESTIONS,
    QUESTIONS_BLOCK,
    TITLE_BLOCK,
)
from bot.management.settings_views import BACK_ACTION, FORM_CALLBACK, REVIEW_CALLBACK
from bot.management.store import RequestState
from bot.sandbox.desk_emulator import DeskEmulator, Fault
from bot.sandbox.slack_emulator import SANDBOX_USER_ID, FakeSlack, block_action_body, sign, slash_command_body
from bot.slack.blocks import FIX_SETTINGS_ACTION as FIX
from tests.support.environment import make_settings
from tests.support.settings_modal import settings_command, settled, submit, top, update_writes
from tests.support.slack_harness import (
    BOT_TOKEN,
    SIGNING_SECRET,
    BotUnderTest,
    event_body,
    home_tab_click,
    slack_env,
    texts,
)
from tests.support.tiers import e2e_fixture

ADMIN = SANDBOX_USER_ID
OTHER = "U0NOTADMIN"
AUDIT = "C0AUDIT"
WATCHING = "C0WATCHING"
SOON = 10.0


@e2e_fixture
def desk() -> Iterator[DeskEmulator]:
    with DeskEmulator(languages=[("en", 1), ("fil", 0), ("vi", 0)], rate_limit=50) as emulator:
        emulator.set_settings("fil", {"FallbackMsg": "", "WelcomeCardEnable": 1, "WelcomeCardTitle": "Hi",
                                      "WelcomeCardQuestions": ["Where is my order?"], "ToAgentEnable": 1,
                                      "DirectAnsweringReaches": "0.80"})
        yield emulator


@e2e_fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=BOT_TOKEN) as fake:
        yield fake


def start(desk: DeskEmulator, slack: FakeSlack, **env: str) -> BotUnderTest:
    environ = {"DESK_ADMINS": ADMIN, "DESK_AUDIT_CHANNEL": AUDIT, **env}
    return BotUnderTest(make_settings(desk, **slack_env(slack, **environ)), slack, desk)


@pytest.fixture
def bot(desk: DeskEmulator, slack: FakeSlack) -> Iterator[BotUnderTest]:
    served = start(desk, slack)
    yield served
    served.close()


def open_form(bot: BotUnderTest, tag: str = "fil") -> dict[str, Any]:
    settings_command(bot, f"settings {tag}")
    return top(bot, FORM_CALLBACK)


def test_an_admin_sets_a_fallback_message_end_to_end(bot: BotUnderTest, desk: DeskEmulator, slack: FakeSlack) -> None:
    bot.reply(bot.command("watch").name)  # this channel watches the app
    form = open_form(bot)
    assert "Hi" in json.dumps(form) and "Where is my order?" in json.dumps(form)  # pre-filled with Desk's values
    assert "0.80" in texts(form)  # the thresholds shown, read-only
    answer = submit(bot, form, {FALLBACK_BLOCK: "Sorry, <!channel> I did not get that."})
    assert answer["response_action"] == "update"
    review = top(bot, REVIEW_CALLBACK)
    shown = texts(review)
    assert "production at once" in shown and "Fallback message" in shown
    assert "&lt;!channel&gt;" in shown and "<!channel>" not in shown  # the person's text is data, not markup
    assert update_writes(desk) == []  # nothing before Apply
    submit(bot, review)
    result = settled(bot, lambda view: "Changed the chatbot settings" in texts(view))
    assert "Fallback message" not in texts(result) or "fallback message" in texts(result)
    (write,) = update_writes(desk)
    sent = json.loads(write.body)
    assert sent["FallbackMsg"] == "Sorry, <!channel> I did not get that."
    assert sent["WelcomeCardTitle"] == "Hi" and sent["DirectAnsweringReaches"] == "0.80"  # the rest as Desk had it
    assert sent["LanguageTag"] == "fil"
    # audit: the table (history), the audit channel
    history = texts(bot.reply(bot.command("history").name))
    assert "changed the chatbot settings of" in history and "fallback message" in history
    assert slack.wait_for(lambda fake: any("fallback message" in texts(m) for m in fake.messages(AUDIT)))
    # the watch alert, once
    assert bot.deps.watch is not None and bot.deps.watch.wait_noticed()
    alerts = [m for m in slack.messages("C0SANDBOX") if "chatbot settings" in texts(m)]
    assert len(alerts) == 1 and "<!channel>" not in json.dumps(alerts[0])
    # status shows it fixed
    status = texts(bot.reply(bot.command("status refresh").name))
    assert "Filipino" in status and "no fallback message" not in status.split("Filipino")[1].split("\n")[0]


def test_the_modal_opens_within_the_trigger_window_while_desk_hangs_then_shows_the_error(
    bot: BotUnderTest, desk: DeskEmulator
) -> None:
    bot.warm()
    desk.inject(Fault(hang=3.0, api="desc_robot_config"), times=5)
    settings_command(bot, "settings fil")
    loading = top(bot)
    assert "Reading the chatbot settings" in texts(loading)
    opened = [call for call in bot.slack.calls("views.open")]
    assert len(opened) == 1 and opened[0].body.get("trigger_id")
    failed = settled(bot, lambda view: "Couldn't read the chatbot settings" in texts(view), )
    assert "Reading" not in texts(failed)
    assert update_writes(desk) == []


@pytest.mark.parametrize(
    ("entered", "block", "words"),
    [
        ({QUESTIONS_BLOCK: "\n".join(f"Q{i}" for i in range(MAX_QUESTIONS + 1))}, QUESTIONS_BLOCK, "at most 20"),
        ({QUESTIONS_BLOCK: "First\n\nThird"}, QUESTIONS_BLOCK, "Line 2 is empty"),
        ({FALLBACK_BLOCK: "x" * 1001}, FALLBACK_BLOCK, "at most 1000"),
        ({TITLE_BLOCK: "t" * 101}, TITLE_BLOCK, "at most 100"),
        ({QUESTIONS_BLOCK: "q" * 61}, QUESTIONS_BLOCK, "at most 60"),
        ({}, FALLBACK_BLOCK, "Nothing changed"),
    ],
)
def test_each_validation_error_shows_under_its_field(
    bot: BotUnderTest, desk: DeskEmulator, entered: dict[str, Any], block: str, words: str
) -> None:
    form = open_form(bot)
    answer = submit(bot, form, entered)
    assert answer["response_action"] == "errors" and words in answer["errors"][block]
    assert top(bot)["callback_id"] == FORM_CALLBACK  # the form stays, with the input
    assert update_writes(desk) == []


def test_review_then_back_keeps_the_input(bot: BotUnderTest, desk: DeskEmulator) -> None:
    form = open_form(bot)
    submit(bot, form, {FALLBACK_BLOCK: "Kept text", CARD_BLOCK: "off"})
    review = top(bot, REVIEW_CALLBACK)
    assert "Welcome card" in texts(review)
    reply = bot.click_in_view(review, BACK_ACTION, value=json.loads(review["private_metadata"])["change"])
    assert reply.status == 200
    again = top(bot, FORM_CALLBACK)
    blocks = {block.get("block_id"): block for block in again["blocks"]}
    assert blocks[FALLBACK_BLOCK]["element"]["initial_value"] == "Kept text"
    assert blocks[CARD_BLOCK]["element"]["initial_option"]["value"] == "off"
    assert update_writes(desk) == []


def test_apply_writes_once_under_a_double_submit(bot: BotUnderTest, desk: DeskEmulator) -> None:
    form = open_form(bot)
    submit(bot, form, {AGENT_BLOCK: "off"})
    review = top(bot, REVIEW_CALLBACK)
    first, second = bot.submit(review), bot.submit(review)
    assert first.status == second.status == 200
    bot.slack.answer_submission(review["id"], first.ack)
    assert bot.slack.wait_for(lambda fake: len(update_writes(desk)) >= 1, timeout=SOON)
    assert bot.slack.wait_for(lambda fake: len(fake.messages(AUDIT)) >= 1, timeout=SOON)  # recorded
    assert len(update_writes(desk)) == 1
    updates = [json.dumps(call.body) for call in bot.slack.calls("views.update")]
    assert bot.slack.wait_for(lambda fake: sum("already" in json.dumps(c.body) for c in fake.calls("views.update"))
                              == 1, timeout=SOON), updates
    history = texts(bot.reply(bot.command("history").name))
    assert history.count("transfer to an agent") == 1


def test_apply_from_two_processes_writes_once(desk: DeskEmulator, slack: FakeSlack, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    one, two = start(desk, slack, DATABASE_URL=url), start(desk, slack, DATABASE_URL=url)
    try:
        form = open_form(one)
        submit(one, form, {FALLBACK_BLOCK: "From two"})
        review = top(one, REVIEW_CALLBACK)
        first, second = one.submit(review), two.submit(review)
        assert first.status == second.status == 200
        assert slack.wait_for(lambda fake: len(update_writes(desk)) >= 1, timeout=SOON)
        assert slack.wait_for(lambda fake: len(fake.calls("views.update")) >= 3, timeout=SOON)
        updates = [json.dumps(call.body) for call in slack.calls("views.update")]
        assert sum("already" in text for text in updates) == 1
        assert len(update_writes(desk)) == 1
    finally:
        one.close()
        two.close()


def test_a_console_change_between_opening_and_apply_writes_nothing(bot: BotUnderTest, desk: DeskEmulator) -> None:
    form = open_form(bot)
    submit(bot, form, {FALLBACK_BLOCK: "Mine"})
    review = top(bot, REVIEW_CALLBACK)
    desk.set_settings("fil", {"WelcomeCardTitle": "Set in the console"})
    submit(bot, review)
    moved = settled(bot, lambda view: "nothing was written" in texts(view))
    assert "Set in the console" in texts(moved) and "welcome card title" in texts(moved)
    assert update_writes(desk) == []


def test_a_non_admin_gets_no_modal_and_a_forged_submission_writes_nothing(
    bot: BotUnderTest, desk: DeskEmulator
) -> None:
    reply = settings_command(bot, "settings fil", user=OTHER)
    assert "Only these people" in texts(bot.reply(reply.name))
    assert bot.slack.calls("views.open") == []
    form = open_form(bot)  # the admin's modal, submitted by someone else with its metadata
    answer = submit(bot, form, {FALLBACK_BLOCK: "Forged"}, user=OTHER)
    assert "Only these people" in json.dumps(answer)
    submit(bot, form, {FALLBACK_BLOCK: "Real"})
    review = top(bot, REVIEW_CALLBACK)
    bot.submit(review, user=OTHER)
    assert bot.slack.wait_for(lambda fake: "Only these people" in json.dumps(fake.calls("views.update")[-1].body))
    assert update_writes(desk) == []


@pytest.mark.parametrize(
    ("text", "words"),
    [("settings ja", "not one of the chatbot languages"), ("settings filipino", "is not a tag Desk uses"),
     ("settings", "Name the language")],
)
def test_a_tag_the_app_does_not_serve_or_an_unknown_tag_is_an_ephemeral_answer(
    bot: BotUnderTest, text: str, words: str
) -> None:
    bot.warm()
    reply = settings_command(bot, text)
    assert words in texts(bot.reply(reply.name))
    assert bot.slack.calls("views.open") == []


@pytest.mark.parametrize(
    ("fault", "result"),
    [
        (Fault(drop=True, api="update_robot_config"), "Changed the chatbot settings"),  # applied, answer lost
        (Fault(http_status=503, api="update_robot_config"), "do not show the change"),  # not run, answer lost
    ],
)
def test_a_lost_answer_ends_as_what_the_settings_read_again_show(
    bot: BotUnderTest, desk: DeskEmulator, fault: Fault, result: str
) -> None:
    form = open_form(bot)
    submit(bot, form, {FALLBACK_BLOCK: "After a loss"})
    review = top(bot, REVIEW_CALLBACK)
    desk.inject(fault)
    submit(bot, review)
    shown = settled(bot, lambda view: "Applying" not in texts(view))
    assert result in texts(shown), texts(shown)
    assert len(update_writes(desk)) == 1  # never sent again


def test_the_modal_texts_carry_no_secret(bot: BotUnderTest, desk: DeskEmulator, slack: FakeSlack) -> None:
    form = open_form(bot)
    submit(bot, form, {FALLBACK_BLOCK: "No secrets"})
    submit(bot, top(bot, REVIEW_CALLBACK))
    settled(bot, lambda view: "Changed" in texts(view))
    every = json.dumps([call.body for call in slack.calls()])
    for secret in bot.settings.secrets():
        assert secret and secret not in every


def test_status_puts_a_fix_button_on_flagged_languages_for_admins_and_it_opens_the_modal(
    bot: BotUnderTest, desk: DeskEmulator
) -> None:
    status = bot.reply(bot.command("status").name)
    fixes = [b["accessory"] for b in status["blocks"] if (b.get("accessory") or {}).get("action_id") == FIX]
    assert " fil" in [f["value"][-4:] for f in fixes]  # Filipino has no fallback message
    assert all(not f["value"].endswith(" en") for f in fixes)  # the default language is ready here
    fil = next(f for f in fixes if f["value"].endswith(" fil"))
    reply = bot.click(FIX, message={"blocks": [{"type": "section", "block_id": "b", "accessory": fil}]})
    assert reply.status == 200
    form = top(bot, FORM_CALLBACK)
    assert json.loads(form["private_metadata"])["tag"] == "fil"
    assert update_writes(desk) == []


def test_a_non_admin_sees_no_fix_button_and_a_forged_fix_click_opens_nothing(bot: BotUnderTest) -> None:
    name = bot.new_name("status")
    body = slash_command_body("status", response_url=bot.slack.response_url(name), user_id=OTHER,
                              trigger_id=bot.slack.trigger_id(OTHER))
    bot.send(body, name)
    status = bot.reply(name)
    assert FIX not in json.dumps(status)
    forged = {"type": "button", "action_id": FIX, "value": " fil", "text": {"type": "plain_text", "text": "Fix"}}
    click_name = bot.new_name("fix")
    reply = bot.send(block_action_body(FIX, response_url=bot.slack.response_url(click_name), user_id=OTHER,
                                       message={"blocks": [{"type": "section", "accessory": forged}]},
                                       trigger_id=bot.slack.trigger_id(OTHER)), click_name)
    assert reply.status == 200
    assert "Only these people" in texts(bot.reply(click_name))
    assert bot.slack.calls("views.open") == []


def test_the_home_tab_has_fix_buttons_for_admins_that_open_the_modal(bot: BotUnderTest) -> None:
    body = event_body({"type": "app_home_opened", "user": ADMIN, "channel": "D0SANDBOX", "tab": "home"})
    assert bot.post(body, {**sign(SIGNING_SECRET, body), "Content-Type": "application/json"}).status_code == 200
    assert bot.slack.wait_for(lambda fake: bool(fake.calls("views.publish")), timeout=SOON)
    view = bot.slack.calls("views.publish")[0].body["view"]
    fixes = [e for b in view["blocks"] if b.get("type") == "actions" for e in b["elements"]
             if e.get("action_id") == FIX]
    assert [e["text"]["text"] for e in fixes if e["value"].endswith(" fil")] == ["Fix Filipino"]
    payload = json.loads(parse_qs(home_tab_click(FIX, view))["payload"][0])
    payload["actions"][0]["value"] = next(e["value"] for e in fixes if e["value"].endswith(" fil"))
    payload["trigger_id"] = bot.slack.trigger_id(ADMIN)
    click = urlencode({"payload": json.dumps(payload)})
    assert bot.post(click, sign(SIGNING_SECRET, click)).status_code == 200
    form = top(bot, FORM_CALLBACK)
    assert json.loads(form["private_metadata"])["tag"] == "fil"


@pytest.mark.parametrize(("desk_has", "result"), [("Crashed after the write", "applied"), ("", "not-seen")])
def test_an_apply_whose_process_died_is_reconciled_from_the_settings_read_again(
    bot: BotUnderTest, desk: DeskEmulator, slack: FakeSlack, desk_has: str, result: str
) -> None:
    form = open_form(bot)
    submit(bot, form, {FALLBACK_BLOCK: "Crashed after the write"})
    change = json.loads(top(bot, REVIEW_CALLBACK)["private_metadata"])["change"]
    manager = bot.deps.manager
    assert manager is not None
    # The process claimed the Apply and died around Desk's write: the request stays `applying`.
    assert manager.store.decide(change, to=RequestState.APPLYING, user=ADMIN, now=time.time() - 600)
    desk.set_settings("fil", {"FallbackMsg": desk_has})
    assert manager.reconcile(now=time.time()) == 1
    assert manager.reconcile(now=time.time()) == 0  # recorded once
    (entry,) = manager.store.history("default")
    assert entry.action == "settings" and entry.result == result and entry.who == ADMIN
    assert entry.detail is not None and entry.detail.startswith("reconciled")
    assert slack.wait_for(lambda fake: any("reconciled" in texts(m) for m in fake.messages(AUDIT)), timeout=SOON)
    assert update_writes(desk) == []  # reconciling reads; it never writes


@pytest.mark.usefixtures("debug_logging")
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_secret_reaches_the_logs_of_the_modal_paths_at_debug(
    desk: DeskEmulator, slack: FakeSlack, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
    log_format: str,
) -> None:
    """Every step of the modal at DEBUG (Bolt's, slack_sdk's and urllib3's lines included): the command,
    a Fix click, Desk failing while the modal loads, a validation error, Back, Apply with a lost
    answer, a forged submission and Slack refusing a views.update. No token, signing secret,
    SecretKey or UserSig shows, in text or in JSON lines."""
    from bot.logs import configure_logging
    from bot.sandbox.desk_emulator import SANDBOX_KEY

    bot = start(desk, slack, LOG_LEVEL="DEBUG", LOG_FORMAT=log_format,
                DESK_TIMEOUT="3")  # the read before Apply waits for a permit: status just spent five
    try:
        configure_logging(bot.settings.log_level, bot.settings.secrets(), bot.settings.log_format)
        caplog.set_level(logging.DEBUG)
        desk.inject(Fault(code=-50040, api="desc_robot_config"))  # the modal says what failed
        settings_command(bot, "settings fil")
        settled(bot, lambda view: "Couldn't read the chatbot settings" in texts(view))
        status = bot.reply(bot.command("status").name)
        fil = next(b["accessory"] for b in status["blocks"]
                   if (b.get("accessory") or {}).get("value", "").endswith(" fil"))
        bot.click(FIX, message={"blocks": [{"type": "section", "block_id": "b", "accessory": fil}]})
        form = top(bot, FORM_CALLBACK)
        assert submit(bot, form, {QUESTIONS_BLOCK: "one\n\nthree"})["response_action"] == "errors"
        submit(bot, form, {FALLBACK_BLOCK: "Logged at DEBUG"})
        review = top(bot, REVIEW_CALLBACK)
        bot.click_in_view(review, BACK_ACTION)
        form = top(bot, FORM_CALLBACK)
        submit(bot, form, {FALLBACK_BLOCK: "Logged at DEBUG"})
        review = top(bot, REVIEW_CALLBACK)
        assert bot.submit(review, user=OTHER).status == 200  # forged: refused, nothing written
        desk.inject(Fault(drop=True, api="update_robot_config"))
        slack.script("views.update", body={"ok": False, "error": "not_found"})  # Slack refuses once
        submit(bot, review)
        assert bot.slack.wait_for(lambda _: len(update_writes(desk)) == 1, timeout=SOON)
        assert bot.slack.wait_for(lambda _: "could not be updated" in caplog.text
                                  or "Changed the chatbot settings" in texts(bot.slack.modal_stack(ADMIN)[-1]),
                                  timeout=SOON)
        time.sleep(0.2)  # the lazy listener's last lines
    finally:
        bot.close()
    err = capsys.readouterr().err
    logged = caplog.text + "\n".join(record.exc_text or "" for record in caplog.records) + err
    if log_format == "json":
        lines = [json.loads(line) for line in err.splitlines() if line.strip()]
        assert lines and all("message" in line for line in lines)
    assert "views.open" in logged and "update_robot_config" in logged  # the paths were logged
    assert any(r.levelno == logging.DEBUG and r.name.startswith("slack_bolt") for r in caplog.records)
    sigs = {parse_qs(call.raw_query)["usersig"][0] for call in desk.calls}
    for secret in (BOT_TOKEN, SIGNING_SECRET, SANDBOX_KEY, *sigs):
        assert secret not in logged
    assert "usersig=" not in logged.replace("usersig=<redacted>", "")
