"""`/desk-languages status`, end to end over real sockets: the Desk emulator's list_faq and
desc_robot_config, the real Slack app on loopback, signed commands, FakeSlack's response_url."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.desk import Language
from bot.desk.readiness import FaqCount, ReadinessReport, RobotSettings
from bot.sandbox.desk_emulator import DeskEmulator, Fault
from bot.sandbox.slack_emulator import FakeSlack
from bot.slack.blocks import MAX_BLOCKS, TEXT_LIMIT, RenderContext, readiness_message, slack_len
from tests.support.environment import desk_env
from tests.support.served import clean_env
from tests.support.slack_harness import BOT_TOKEN, BotUnderTest, running_bot, texts
from tests.support.tiers import e2e_fixture


@e2e_fixture
def desk() -> Iterator[DeskEmulator]:
    with DeskEmulator(rate_limit=1000) as emulator:  # the default sample: 5 languages, vi and fil flagged
        yield emulator


@pytest.fixture
def bot(desk: DeskEmulator) -> Iterator[BotUnderTest]:
    yield from running_bot(desk)


def status(bot: BotUnderTest, text: str = "status") -> tuple[dict[str, object] | None, dict[str, object]]:
    reply = bot.command(text)
    assert reply.status == 200 and reply.elapsed < 3.0
    if reply.ack is not None and "Desk chatbot readiness" in str(reply.ack.get("text")):
        return reply.ack, reply.ack
    return reply.ack, bot.reply(reply.name, timeout=10)


def test_a_mixed_report_flags_each_problem_with_the_summary_first(bot: BotUnderTest, desk: DeskEmulator) -> None:
    desk.set_faq("ja", [{"StandardQuestion": "q", "Status": 4}])  # 1 live question: under half of English's
    desk.set_faq("zh", [])  # Vietnamese's welcome card is off and Filipino has no fallback (the sample)
    ack, report = status(bot)
    assert ack is not None and "Checking the knowledge base" in texts(ack)  # the ack says what it checks
    shown = texts(report)
    summary = next(line for line in shown.splitlines() if line.startswith("*1 of 5 languages ready"))
    for phrase in ("Chinese has no FAQ questions", "Filipino has no fallback message",
                   "Vietnamese has the welcome card off", "under half of the default language's"):
        assert phrase in summary
    assert shown.index("English (`en`) :star:") < shown.index("Chinese (`zh`)")  # the default first
    assert ":white_check_mark: English (`en`)" in shown and ":warning: Chinese (`zh`) · 0 FAQ questions" in shown


def test_a_failed_check_shows_that_language_s_error_and_the_others_normally(
    bot: BotUnderTest, desk: DeskEmulator
) -> None:
    desk.inject(Fault(code=-50040, api="desc_robot_config"))  # the first settings call fails
    _, report = status(bot)
    shown = texts(report)
    assert shown.count(":x: `-50040`") == 1 and "Enable Desk" in shown
    assert shown.count(":white_check_mark:") >= 2  # the sample's 3 ready, less one whose check may have failed


def test_a_warm_report_is_answered_in_the_ack(bot: BotUnderTest, desk: DeskEmulator) -> None:
    status(bot)
    calls = len(desk.calls)
    reply = bot.command("status")
    assert reply.ack is not None and "3 of 5 languages ready" in texts(reply.ack)
    assert len(desk.calls) == calls  # no Desk call
    time.sleep(1.1)  # a refresh accepts a report made less than a second ago
    _, refreshed = status(bot, "status refresh")
    assert "3 of 5 languages ready" in texts(refreshed) and len(desk.calls) > calls


def test_a_stale_report_says_how_old_it_is(desk: DeskEmulator) -> None:
    with FakeSlack(token=BOT_TOKEN) as slack:
        from tests.support.slack_harness import start_bot

        bot = start_bot(slack, desk, DESK_STATUS_TTL="0", DESK_CACHE_TTL="0")
        try:
            status(bot)
            desk.inject(Fault(http_status=502), times=-1)
            _, report = status(bot)
        finally:
            bot.close()
    assert "Desk failed just now (`http-gateway`); these are the checks of" in texts(report)


def test_230_languages_stay_within_block_kit_limits() -> None:
    # Rendering only: Desk's 5 calls/s per API would take 90 s to check 230 languages for real.
    languages = [Language.of("en", True)] + [Language.of(f"x{i:03d}") for i in range(229)]
    config = RobotSettings(welcome_card_enabled=True, welcome_card_questions=("Hi",), fallback_message="",
                         to_agent_enabled=True)
    report = ReadinessReport.build(languages, [FaqCount(i % 3, 5) for i in range(230)], [config] * 230, 1.7e9)
    message = readiness_message(report, RenderContext(sdkappid=1400000001, region="Singapore"))
    assert len(message["blocks"]) <= MAX_BLOCKS
    for block in message["blocks"]:
        for text in _texts(block):
            assert slack_len(text) <= TEXT_LIMIT
    assert "…and" in texts(message) and "of 230 languages ready" in texts(message)


def _texts(node: object) -> list[str]:
    if isinstance(node, dict):
        own = [node["text"]] if isinstance(node.get("text"), str) else []
        return own + [t for value in node.values() for t in _texts(value)]
    if isinstance(node, list):
        return [t for value in node for t in _texts(value)]
    return []


def test_cli_status_table_json_and_exit_3_on_a_failed_check(desk: DeskEmulator, tmp_path: Path) -> None:
    env = clean_env(**desk_env(desk))
    table = subprocess.run([sys.executable, "-m", "bot", "status"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=60, check=False)
    assert table.returncode == 0, table.stderr
    assert "no: has the welcome card off" in table.stdout and "3 of 5 languages ready" in table.stdout
    desk.inject(Fault(code=70500, api="list_faq"), times=-1)
    failed = subprocess.run([sys.executable, "-m", "bot", "status", "--json"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert failed.returncode == 3 and "Traceback" not in failed.stderr
    document = json.loads(failed.stdout)
    assert document["languages"][0]["faq"]["error"]["code"] == 70500


def test_the_home_tab_shows_each_app_s_list_and_readiness(desk: DeskEmulator) -> None:
    from bot.sandbox.slack_emulator import SANDBOX_USER_ID, sign
    from tests.support.slack_harness import SIGNING_SECRET, event_body, start_bot
    with FakeSlack(token=BOT_TOKEN) as slack, DeskEmulator(sdkappid=1400000009, key="second-key-0123456789") as other:
        env = {
            "DESK_APPS": "prod,staging",
            "DESK_PROD_SDKAPPID": str(desk.sdkappid), "DESK_PROD_API_URL": desk.base_url,
            "DESK_STAGING_SDKAPPID": str(other.sdkappid), "DESK_STAGING_SECRET_KEY": "second-key-0123456789",
            "DESK_STAGING_API_URL": other.base_url, "DESK_STAGING_LABEL": "Staging",
        }
        bot = start_bot(slack, desk, **env)
        try:
            body = event_body({"type": "app_home_opened", "user": SANDBOX_USER_ID, "channel": "D0X", "tab": "home"})
            assert bot.post(body, {**sign(SIGNING_SECRET, body), "Content-Type": "application/json"}).status_code == 200
            assert slack.wait_for(lambda fake: bool(fake.calls("views.publish")), timeout=10)
            view = json.dumps(slack.calls("views.publish")[0].body["view"])
        finally:
            bot.close()
    assert view.count("*Readiness:*") == 2 and "3 of 5 languages ready" in view
    assert "Staging" in view and str(other.sdkappid) in view
