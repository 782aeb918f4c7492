"""A write Desk applied is recorded whatever fails after it (issue 19 §2), over real sockets: the
Desk emulator, the production Slack app on loopback or `python -m bot serve` in its own process,
FakeSlack, signed commands and clicks, and a real SQLite file locked or left behind by a killed
process. Also: who asked and who confirmed, in the result and the audit line."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from bot.management.messages import CONFIRM_ACTION
from bot.management.service import RECONCILE_AFTER
from bot.management.store import ChangeStore, RequestState
from bot.sandbox.desk_emulator import DeskEmulator, Fault
from bot.sandbox.slack_emulator import SANDBOX_USER_ID, FakeSlack, block_action_body, sign, slash_command_body
from tests.support.environment import desk_env, make_settings
from tests.support.served import Served, clean_env
from tests.support.services import free_port
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

ADMIN, OTHER_ADMIN = SANDBOX_USER_ID, "U0SECONDADMIN"
AUDIT = "C0AUDIT"


@e2e_fixture
def desk() -> Iterator[DeskEmulator]:
    with DeskEmulator(languages=[("en", 1), ("zh", 0), ("ja", 0)], rate_limit=50) as emulator:
        yield emulator


@e2e_fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=BOT_TOKEN) as fake:
        yield fake


def environment(database: Path) -> dict[str, str]:
    return {"DESK_ADMINS": f"{ADMIN},{OTHER_ADMIN}", "DESK_AUDIT_CHANNEL": AUDIT, "DATABASE_URL": f"sqlite:///{database}"}


def start(desk: DeskEmulator, slack: FakeSlack, database: Path) -> BotUnderTest:
    return BotUnderTest(make_settings(desk, **slack_env(slack, **environment(database))), slack, desk)


def wait_until(condition: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.02)
    return False


def test_a_database_locked_after_desk_applied_is_told_sent_and_recorded_once_it_answers(
    desk: DeskEmulator, slack: FakeSlack, tmp_path: Path
) -> None:
    database = tmp_path / "bot.db"
    bot = start(desk, slack, database)
    try:
        confirmation = command_as(bot, ADMIN, "add vi")
        desk.inject(Fault(late=1.0, api="robot_add_language"))  # time to lock the database mid-write
        clicked = click(bot, confirmation, CONFIRM_ACTION)
        assert wait_until(lambda: ("vi", 0) in desk.languages)  # Desk has applied it
        locker = sqlite3.connect(database, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")  # nobody may write until we roll back
        try:
            shown = texts(bot.reply(clicked.name, timeout=60))  # after SQLite's 30 s busy timeout
            assert slack.messages(AUDIT) == []
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert "The change was sent to Desk" in shown and "not recorded yet" in shown
        assert "try again" not in shown.lower() and "Vietnamese (`vi`)" in shown  # the list as Desk has it
        manager = bot.deps.manager
        assert manager is not None
        assert manager.reconcile() == 1
        assert manager.reconcile() == 0  # recorded once
        (line,) = slack.messages(AUDIT)
        assert f"<@{ADMIN}> added Vietnamese" in texts(line) and "applied" in texts(line)
        (entry,) = manager.store.history("default")
        assert (entry.result, entry.who, entry.requested_by) == ("applied", ADMIN, ADMIN)
    finally:
        bot.close()


def test_a_process_killed_after_desk_applied_is_reconciled_once_across_processes(
    desk: DeskEmulator, slack: FakeSlack, tmp_path: Path
) -> None:
    database = tmp_path / "bot.db"
    port = free_port()
    env = clean_env(**desk_env(desk), **slack_env(slack, **environment(database)), HOST="127.0.0.1",
                    PORT=str(port), WEB_CONCURRENCY="1", LOG_LEVEL="WARNING")
    import subprocess
    import sys
    process = subprocess.Popen([sys.executable, "-m", "bot", "serve"], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    served = Served(process, f"http://127.0.0.1:{port}")
    try:
        served.wait_until_healthy()
        body = slash_command_body("add vi", response_url=slack.response_url("ask"), user_id=ADMIN)
        requests.post(f"{served.url}/slack/events", data=body, headers=sign(SIGNING_SECRET, body), timeout=5)
        assert slack.wait_for(lambda fake: bool(fake.responses("ask")), timeout=10)
        value = button(slack.responses("ask")[0].body, CONFIRM_ACTION)["value"]
        desk.inject(Fault(late=30.0, api="robot_add_language"))  # Desk applies it; the answer never comes in time
        click_body = block_action_body(CONFIRM_ACTION, response_url=slack.response_url("confirm"), value=value,
                                       user_id=OTHER_ADMIN)
        requests.post(f"{served.url}/slack/events", data=click_body, headers=sign(SIGNING_SECRET, click_body),
                      timeout=5)
        assert wait_until(lambda: ("vi", 0) in desk.languages)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the crash: between Desk applying it and the record
        process.wait(10)
    desk.clear_faults()
    one, two = start(desk, slack, database), start(desk, slack, database)
    try:
        store = ChangeStore(one.deps.manager.store.engine) if one.deps.manager else None
        assert store is not None
        (request,) = store.unsettled(decided_before=time.time() + 1)
        assert request.state is RequestState.APPLYING
        assert one.deps.manager is not None and two.deps.manager is not None
        assert one.deps.manager.reconcile() == 0  # too soon: the writer may still be waiting for Desk
        later = time.time() + RECONCILE_AFTER + 1
        recorded = [one.deps.manager.reconcile(later), two.deps.manager.reconcile(later)]
        assert sorted(recorded) == [0, 1]
        (line,) = slack.messages(AUDIT)
        said = texts(line)
        assert f"<@{OTHER_ADMIN}> added Vietnamese" in said and f"requested by <@{ADMIN}>" in said
        assert "reconciled" in said
        (entry,) = store.history("default")
        assert (entry.result, entry.who, entry.requested_by) == ("applied", OTHER_ADMIN, ADMIN)
        assert store.unsettled(decided_before=later) == []
    finally:
        one.close()
        two.close()


def test_another_admin_confirming_is_shown_and_audited_beside_who_asked(
    desk: DeskEmulator, slack: FakeSlack, tmp_path: Path
) -> None:
    bot = start(desk, slack, tmp_path / "bot.db")
    try:
        confirmation = command_as(bot, ADMIN, "add vi")
        value = button(confirmation, CONFIRM_ACTION)["value"]
        body = block_action_body(CONFIRM_ACTION, response_url=slack.response_url("by-other"), value=value,
                                 user_id=OTHER_ADMIN)
        bot.send(body, "by-other")
        shown = texts(bot.reply("by-other", timeout=10))
        assert f"Requested by <@{ADMIN}>, confirmed by <@{OTHER_ADMIN}>" in shown
        (line,) = slack.messages(AUDIT)
        assert f"<@{OTHER_ADMIN}> added Vietnamese" in texts(line) and f"requested by <@{ADMIN}>" in texts(line)
    finally:
        bot.close()


def test_a_refused_write_is_audited_as_tried_and_refused(desk: DeskEmulator, slack: FakeSlack, tmp_path: Path) -> None:
    bot = start(desk, slack, tmp_path / "bot.db")
    try:
        desk.set_faq("ja", [])  # none live, so the removal is offered; Desk refuses it all the same
        confirmation = command_as(bot, ADMIN, "remove ja")
        desk.inject(Fault(code=-50056, api="robot_del_language"))
        bot.reply(click(bot, confirmation, CONFIRM_ACTION).name, timeout=10)
        (line,) = slack.messages(AUDIT)
        said = texts(line)
        assert f"<@{ADMIN}> tried to remove Japanese" in said and "Desk refused: -50056" in said
        assert "removed Japanese" not in said
    finally:
        bot.close()


def test_a_stale_list_in_another_process_does_not_decide_a_write(
    desk: DeskEmulator, slack: FakeSlack, tmp_path: Path
) -> None:
    # Two processes, no Redis: the second's cached list still lacks nothing the first added.
    database = tmp_path / "bot.db"
    one, two = start(desk, slack, database), start(desk, slack, database)
    try:
        one.warm()
        two.warm()
        first = command_as(one, ADMIN, "add vi", prefix="one")
        second = command_as(two, ADMIN, "add vi", prefix="two")  # offered: two's cache has no vi
        assert "Confirm" in str(button(second, CONFIRM_ACTION))

        def confirm(served: BotUnderTest, confirmation: dict[str, object], name: str) -> str:
            value = button(confirmation, CONFIRM_ACTION)["value"]
            served.send(block_action_body(CONFIRM_ACTION, response_url=slack.response_url(name), value=value), name)
            return texts(served.reply(name, timeout=10))

        assert "was added" in confirm(one, first, "one-confirms")
        refused = confirm(two, second, "two-confirms")
        assert "The list changed since this was asked" in refused and "already one of" in refused
        assert [call.api for call in desk.calls].count("robot_add_language") == 1
        assert "nothing was sent" in confirm(two, second, "two-again")
    finally:
        one.close()
        two.close()
