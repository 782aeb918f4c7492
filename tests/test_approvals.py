"""Two-person approval (DESK_APPROVALS=2), end to end over real sockets: the Desk emulator, the real
Slack app on loopback, FakeSlack's audit channel, signed commands and signed clicks, one or two
processes on one database; and the command line's --approved-by."""

from __future__ import annotations

import getpass
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.management.messages import APPROVE_ACTION, CANCEL_ACTION, CONFIRM_ACTION, REJECT_ACTION
from bot.sandbox.desk_emulator import DeskEmulator
from bot.sandbox.slack_emulator import SANDBOX_USER_ID, FakeSlack, block_action_body
from tests.support.environment import BOTH_DATABASES, desk_env, make_settings
from tests.support.served import clean_env
from tests.support.slack_harness import BOT_TOKEN, BotUnderTest, button, click, command_as, slack_env, texts
from tests.support.tiers import e2e_fixture

ASKER = SANDBOX_USER_ID
SECOND, THIRD, OTHER = "U0SECOND", "U0THIRD", "U0NOTADMIN"
AUDIT = "C0AUDIT"


@e2e_fixture
def desk() -> Iterator[DeskEmulator]:
    with DeskEmulator(languages=[("en", 1), ("zh", 0), ("ja", 0)], rate_limit=50) as emulator:
        yield emulator


@e2e_fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=BOT_TOKEN) as fake:
        yield fake


def start(desk: DeskEmulator, slack: FakeSlack, **env: str) -> BotUnderTest:
    environ = {"DESK_ADMINS": f"{ASKER},{SECOND},{THIRD}", "DESK_AUDIT_CHANNEL": AUDIT, "DESK_APPROVALS": "2", **env}
    return BotUnderTest(make_settings(desk, **slack_env(slack, **environ)), slack, desk)


@pytest.fixture
def bot(desk: DeskEmulator, slack: FakeSlack) -> Iterator[BotUnderTest]:
    served = start(desk, slack)
    yield served
    served.close()


def writes(desk: DeskEmulator) -> list[str]:
    return [call.api for call in desk.calls if call.api in ("robot_add_language", "robot_del_language")]


def requests_posted(slack: FakeSlack) -> list[dict[str, Any]]:
    """The requests for approval in the audit channel (as they are now: updated in place)."""
    return [m for m in slack.messages(AUDIT) if "*Approval needed*" in texts(m)]


def audit_lines(slack: FakeSlack) -> list[str]:
    return [texts(m) for m in slack.messages(AUDIT) if "*Approval needed*" not in texts(m)]


def ask(bot: BotUnderTest, text: str = "add vi", user: str = ASKER) -> dict[str, Any]:
    """`text` asked and confirmed by `user`: what they see (waiting, or why not)."""
    confirmation = command_as(bot, user, text)
    return bot.reply(click(bot, confirmation, CONFIRM_ACTION, user=user).name)


def decide(bot: BotUnderTest, request: dict[str, Any], action: str, user: str) -> str:
    """`user` clicks Approve or Reject on the posted request: what they alone see."""
    reply = bot.reply(click(bot, request, action, user=user).name)
    assert reply.get("response_type") == "ephemeral" and reply.get("replace_original") is False
    return texts(reply)


def history(bot: BotUnderTest) -> str:
    return texts(command_as(bot, ASKER, "history"))


def test_a_confirm_becomes_a_request_and_a_second_admin_approves_it(
    bot: BotUnderTest, desk: DeskEmulator, slack: FakeSlack
) -> None:
    confirmation = command_as(bot, ASKER, "add vi")
    assert "needs two people for every change (DESK_APPROVALS=2)" in texts(confirmation)
    waiting = bot.reply(click(bot, confirmation, CONFIRM_ACTION).name)
    assert "Waiting for a second admin" in texts(waiting) and f"<#{AUDIT}>" in texts(waiting)
    assert button(waiting, CANCEL_ACTION)
    (request,) = requests_posted(slack)
    assert f"<@{ASKER}> asks to add Vietnamese (`vi`)" in texts(request)
    assert button(request, APPROVE_ACTION) and button(request, REJECT_ACTION) and writes(desk) == []

    assert "another admin" in decide(bot, request, APPROVE_ACTION, ASKER)  # not their own
    assert "Only these people" in decide(bot, request, APPROVE_ACTION, OTHER)  # a non-admin
    assert writes(desk) == []
    result = decide(bot, request, APPROVE_ACTION, SECOND)
    assert "Vietnamese (vi) was added." in result and f"Requested by <@{ASKER}>, confirmed by <@{SECOND}>" in result
    assert writes(desk) == ["robot_add_language"] and ("vi", 0) in desk.languages
    (updated,) = requests_posted(slack)
    assert updated["ts"] == request["ts"] and f"Approved by <@{SECOND}>" in texts(updated)
    assert APPROVE_ACTION not in str(updated["blocks"])  # no buttons once it has ended
    assert "already approved" in decide(bot, request, APPROVE_ACTION, THIRD) and writes(desk) == ["robot_add_language"]
    assert f"<@{SECOND}> added Vietnamese (`vi`) · requested by <@{ASKER}>" in history(bot)


def test_double_approvals_from_two_processes_write_once(
    desk: DeskEmulator, slack: FakeSlack, tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    one, two = start(desk, slack, DATABASE_URL=database), start(desk, slack, DATABASE_URL=database)
    try:
        ask(one)
        (request,) = requests_posted(slack)
        value = button(request, APPROVE_ACTION)["value"]
        clicks = [
            (served, name, block_action_body(APPROVE_ACTION, response_url=slack.response_url(name), value=value,
                                             user_id=user))
            for served, name, user in ((one, "a1", SECOND), (two, "a2", SECOND), (one, "a3", THIRD), (two, "a4", THIRD))
        ]
        threads = [threading.Thread(target=served.send, args=(body, name)) for served, name, body in clicks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        answers = [texts(one.reply(name)) for _, name, _ in clicks]
    finally:
        one.close()
        two.close()
    assert writes(desk) == ["robot_add_language"]
    assert sum("was added" in answer for answer in answers) == 1
    assert sum("already approved" in answer for answer in answers) == 3
    assert sum("Approved by" in texts(m) for m in requests_posted(slack)) == 1
    assert sum("added Vietnamese" in line for line in audit_lines(slack)) == 1


def test_rejection_writes_nothing_is_audited_and_frees_the_lock(
    bot: BotUnderTest, desk: DeskEmulator, slack: FakeSlack
) -> None:
    ask(bot)
    (request,) = requests_posted(slack)
    locked = command_as(bot, THIRD, "add fil")
    assert f"<@{ASKER}>'s request to add `vi` has been waiting since" in texts(locked)
    assert not any(CONFIRM_ACTION in str(block) for block in locked["blocks"])
    assert "Only these people" in decide(bot, request, REJECT_ACTION, OTHER)
    assert "Rejected: nothing was written" in decide(bot, request, REJECT_ACTION, SECOND)
    assert writes(desk) == []
    (ended,) = requests_posted(slack)
    assert f"<@{SECOND}> rejected <@{ASKER}>'s request to add Vietnamese" in texts(ended)
    assert f"rejected by <@{SECOND}>; nothing was written" in decide(bot, request, APPROVE_ACTION, THIRD)
    assert writes(desk) == []
    lines = audit_lines(slack)
    assert any("rejected" in line and f"<@{ASKER}>" in line and f"<@{SECOND}>" in line for line in lines)
    assert f"<@{SECOND}> rejected <@{ASKER}>'s request" in history(bot)
    assert "Waiting for a second admin" in texts(ask(bot, "add fil", THIRD))  # the lock is free again


def test_the_requester_cancels_and_frees_the_lock(bot: BotUnderTest, desk: DeskEmulator, slack: FakeSlack) -> None:
    waiting = ask(bot)
    cancelled = bot.reply(click(bot, waiting, CANCEL_ACTION, user=OTHER).name)
    assert "Only the person who asked" in texts(cancelled)
    cancelled = bot.reply(click(bot, waiting, CANCEL_ACTION, user=ASKER).name)
    assert "Cancelled" in texts(cancelled) and writes(desk) == []
    (ended,) = requests_posted(slack)
    assert f"<@{ASKER}> cancelled the request" in texts(ended)
    assert "Waiting for a second admin" in texts(ask(bot, "add fil", SECOND))


def test_an_expired_request_writes_nothing_says_so_and_frees_the_lock(
    bot: BotUnderTest, desk: DeskEmulator, slack: FakeSlack
) -> None:
    ask(bot)
    (request,) = requests_posted(slack)
    manager = bot.deps.manager
    assert manager is not None
    real_clock = manager._clock
    manager._clock = lambda: real_clock() + 86401  # a day and a second later
    assert manager.reconcile() == 1 and manager.reconcile() == 0  # expired once
    (ended,) = requests_posted(slack)
    assert "expired: no second admin approved it" in texts(ended) and APPROVE_ACTION not in str(ended["blocks"])
    assert "expired" in decide(bot, request, APPROVE_ACTION, SECOND) and writes(desk) == []
    assert "expired" in history(bot)
    assert "Waiting for a second admin" in texts(ask(bot, "add fil", SECOND))


def test_a_request_that_no_longer_applies_writes_nothing(
    bot: BotUnderTest, desk: DeskEmulator, slack: FakeSlack
) -> None:
    ask(bot)
    (request,) = requests_posted(slack)
    desk.set_languages([("en", 1), ("zh", 0), ("ja", 0), ("vi", 0)])  # added in the console meanwhile
    answer = decide(bot, request, APPROVE_ACTION, SECOND)
    assert "already one of the chatbot's languages" in answer and writes(desk) == []
    (ended,) = requests_posted(slack)
    assert "which no longer applied" in texts(ended)
    assert "no longer applied" in history(bot)
    assert "Waiting for a second admin" in texts(ask(bot, "add fil", SECOND))


def test_two_requests_at_once_from_two_processes_take_the_lock_once(
    desk: DeskEmulator, slack: FakeSlack, tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    one, two = start(desk, slack, DATABASE_URL=database), start(desk, slack, DATABASE_URL=database)
    try:
        first, second = command_as(one, ASKER, "add vi", "one"), command_as(two, SECOND, "add fil", "two")
        answers: list[str] = []

        def confirm(served: BotUnderTest, message: dict[str, Any], user: str, prefix: str) -> None:
            answers.append(texts(served.reply(click(served, message, CONFIRM_ACTION, user=user, prefix=prefix).name)))

        threads = [
            threading.Thread(target=confirm, args=(one, first, ASKER, "c1")),
            threading.Thread(target=confirm, args=(two, second, SECOND, "c2")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    finally:
        one.close()
        two.close()
    assert sum("Waiting for a second admin" in answer for answer in answers) == 1
    assert sum("has been waiting since" in answer for answer in answers) == 1
    assert len(requests_posted(slack)) == 1 and writes(desk) == []


def test_approvals_two_without_an_audit_channel_refuse_to_start(desk: DeskEmulator, tmp_path: Path) -> None:
    env = clean_env(**desk_env(desk, DATABASE_URL=f"sqlite:///{tmp_path / 'a.db'}", DESK_APPROVALS="2"))
    done = subprocess.run([sys.executable, "-m", "bot", "languages"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "configuration error: DESK_APPROVALS: is 2, but DESK_AUDIT_CHANNEL is not set (requests for approval are "
        "posted there). "
        "Set DESK_AUDIT_CHANNEL to the channel ID where admins approve (e.g. C0123ABCD), or set DESK_APPROVALS to 1."
    ]
    env["DESK_APPROVALS"] = "3"
    done = subprocess.run([sys.executable, "-m", "bot", "languages"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2 and "DESK_APPROVALS: '3' is not a whole number between 1 and 2" in done.stderr


def test_the_command_line_needs_a_second_admin_named_and_audits_it(desk: DeskEmulator, tmp_path: Path) -> None:
    database = tmp_path / "cli.db"
    env = clean_env(**desk_env(desk, DATABASE_URL=f"sqlite:///{database}", DESK_APPROVALS="2",
                               DESK_AUDIT_CHANNEL=AUDIT, DESK_ADMINS=f"{ASKER},{SECOND}"))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bot", *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=60, check=False)

    missing = run("add", "vi", "--yes")
    said = [line for line in missing.stderr.splitlines() if " INFO " not in line]
    assert missing.returncode == 2 and len(said) == 1 and "--approved-by" in said[0] and "DESK_APPROVALS=2" in said[0]
    not_admin = run("add", "vi", "--yes", "--approved-by", OTHER)
    assert not_admin.returncode == 2 and f"{OTHER} is not an admin" in not_admin.stderr
    assert writes(desk) == []
    done = run("add", "vi", "--yes", "--approved-by", SECOND)
    assert done.returncode == 0, done.stderr
    assert writes(desk) == ["robot_add_language"]
    with sa.create_engine(f"sqlite:///{database}").connect() as conn:
        rows = conn.execute(sa.text("SELECT who, action, tag, result, detail FROM language_changes")).all()
    assert len(rows) == 1 and rows[0][0].startswith("cli:") and rows[0][1:4] == ("add", "vi", "applied")
    assert rows[0][4] == f"approved by {SECOND}"
    settings = run("settings", "ja", "--fallback", "Sorry", "--yes")
    assert settings.returncode == 2 and "--approved-by" in settings.stderr


def test_a_settings_change_waits_for_approval_and_its_text_stays_data(
    bot: BotUnderTest, desk: DeskEmulator, slack: FakeSlack
) -> None:
    from bot.management.settings_form import FALLBACK_BLOCK
    from bot.management.settings_views import FORM_CALLBACK, REVIEW_CALLBACK
    from tests.support.settings_modal import settings_command, settled, submit, top, update_writes

    desk.set_settings("ja", {"FallbackMsg": "", "WelcomeCardEnable": 0, "WelcomeCardTitle": "",
                             "WelcomeCardQuestions": [], "ToAgentEnable": 1, "DirectAnsweringReaches": "0.80"})
    settings_command(bot, "settings ja")
    submit(bot, top(bot, FORM_CALLBACK), {FALLBACK_BLOCK: "<!channel> Sorry, I did not get that."})
    submit(bot, top(bot, REVIEW_CALLBACK))
    waiting = settled(bot, lambda view: "Waiting for a second admin" in texts(view))
    assert f"<#{AUDIT}>" in texts(waiting) and update_writes(desk) == []
    (request,) = requests_posted(slack)
    shown = texts(request)
    assert "change the chatbot settings of Japanese (`ja`)" in shown
    assert "&lt;!channel&gt; Sorry" in shown and "<!channel>" not in shown  # the requester's text is data
    assert "another admin" in decide(bot, request, APPROVE_ACTION, ASKER) and update_writes(desk) == []
    assert "Changed the chatbot settings of Japanese" in decide(bot, request, APPROVE_ACTION, SECOND)
    (write,) = update_writes(desk)
    assert json.loads(write.body)["FallbackMsg"] == "<!channel> Sorry, I did not get that."
    assert f"Approved by <@{SECOND}>" in texts(requests_posted(slack)[0])
    assert "Waiting for a second admin" in texts(ask(bot, "add fil"))  # the approval freed the lock


@BOTH_DATABASES
def test_the_lock_holds_on_both_databases_under_racing_holds(database_url: str) -> None:
    """Many threads confirming requests of one app at once: one waits, the rest see the holder; an
    end frees the lock for the next; expiry only once the time is up, once."""
    from bot.database import connect
    from bot.management.store import AppLocked, AuditEntry, ChangeStore, RequestState

    store = ChangeStore(connect(database_url))
    ids = [store.create_request(app="prod", action="add", tag="vi", user=f"U{n}", now=1.0, ttl=600) for n in range(8)]
    other_app = store.create_request(app="staging", action="add", tag="vi", user="U9", now=1.0, ttl=600)
    outcomes: list[str] = []

    def hold(request_id: str) -> None:
        try:
            outcomes.append("held" if store.hold(request_id, now=2.0, ttl=100) else "spent")
        except AppLocked as locked:
            outcomes.append(f"locked by {locked.holder.requested_by if locked.holder else '?'}")

    threads = [threading.Thread(target=hold, args=(request_id,)) for request_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    holder = store.awaiting("prod")
    assert holder is not None and outcomes.count("held") == 1
    assert outcomes.count(f"locked by {holder.requested_by}") == 7
    assert store.hold(other_app, now=2.0, ttl=100)  # one lock per app
    entry = AuditEntry(at=3.0, who="U0SECOND", app="prod", sdkappid=1, action="add", tag="vi", result="rejected",
                       detail=None, requested_by=holder.requested_by)
    assert not store.end(holder.id, to=RequestState.EXPIRED, entry=entry, now=50.0, expired=True)  # not yet due
    assert store.end(holder.id, to=RequestState.REJECTED, entry=entry, now=50.0)
    assert not store.end(holder.id, to=RequestState.REJECTED, entry=entry, now=50.0)  # once
    assert store.awaiting("prod") is None
    second = next(request_id for request_id in ids if request_id != holder.id)
    assert store.hold(second, now=60.0, ttl=100)
    assert store.due_to_expire(now=100.0) == []
    assert [r.id for r in store.due_to_expire(now=161.0)] == [other_app, second]  # the soonest first
    expiry = AuditEntry(at=161.0, who="U1", app="prod", sdkappid=1, action="add", tag="vi", result="expired",
                        detail=None, requested_by="U1")
    assert store.end(second, to=RequestState.EXPIRED, entry=expiry, now=161.0, expired=True)
    assert [e.result for e in store.history("prod")] == ["expired", "rejected"]


def test_no_secret_in_requests_audit_lines_or_logs_at_debug(
    bot: BotUnderTest, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.sandbox.desk_emulator import SANDBOX_KEY
    from tests.support.slack_harness import SIGNING_SECRET

    caplog.set_level("DEBUG")
    ask(bot)
    (request,) = requests_posted(slack)
    decide(bot, request, REJECT_ACTION, SECOND)
    ask(bot, "add fil")
    (_, second) = requests_posted(slack)
    decide(bot, second, APPROVE_ACTION, THIRD)
    shown = json.dumps(slack.messages(AUDIT)) + history(bot)
    assert "rejected" in shown and "added Filipino" in shown
    for secret in (BOT_TOKEN, SIGNING_SECRET, SANDBOX_KEY):
        assert secret not in shown and secret not in caplog.text


# --- the command line's apply and remove ------------------------------------------------------------


def test_apply_and_remove_on_the_command_line_need_a_second_admin_and_the_audit_names_both(
    desk: DeskEmulator, tmp_path: Path
) -> None:
    """Without --approved-by, `apply` and `remove` say so in one line, exit 2 and write nothing (not
    even the plan's first step); with a second admin named, each write is audited with the
    operator (apply:<user>, cli:<user>) as who and the approver in its detail."""
    database = tmp_path / "cli.db"
    desk.set_faq("ja", [])  # removable
    (tmp_path / "desk-languages.toml").write_text('[default]\nlanguages = ["en", "zh", "vi"]\n', encoding="utf-8")
    env = clean_env(**desk_env(desk, DATABASE_URL=f"sqlite:///{database}", DESK_APPROVALS="2",
                               DESK_AUDIT_CHANNEL=AUDIT, DESK_ADMINS=f"{ASKER},{SECOND}"))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bot", *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)

    def audit() -> list[tuple[str, str, str, str, str]]:
        with sa.create_engine(f"sqlite:///{database}").connect() as conn:
            query = "SELECT who, action, tag, result, detail FROM language_changes ORDER BY id"
            return [(row[0], row[1], row[2], row[3], row[4]) for row in conn.execute(sa.text(query)).all()]

    apply, remove = run("apply", "--yes"), run("remove", "ja", "--yes")
    for refused in (apply, remove):
        said = [line for line in refused.stderr.splitlines() if " INFO " not in line]
        assert refused.returncode == 2 and len(said) == 1, refused.stderr
        assert said[0].startswith("error: ") and "--approved-by" in said[0]
        assert "needs two people for every change (DESK_APPROVALS=2)" in said[0]
    assert apply.stderr.strip().endswith("Nothing was applied.")
    assert "- ja (Japanese)" in apply.stdout and "+ vi (Vietnamese)" in apply.stdout  # the plan it did not apply
    assert writes(desk) == [] and audit() == []

    operator = getpass.getuser()
    done = run("apply", "--yes", "--approved-by", SECOND)
    assert done.returncode == 0, done.stdout + done.stderr
    assert writes(desk) == ["robot_del_language", "robot_add_language"], done.stdout
    assert audit() == [
        (f"apply:{operator}", "remove", "ja", "applied", f"approved by {SECOND}"),
        (f"apply:{operator}", "add", "vi", "applied", f"approved by {SECOND}"),
    ]
    removed = run("remove", "vi", "--yes", "--approved-by", SECOND)
    assert removed.returncode == 0, removed.stderr
    assert audit()[-1] == (f"cli:{operator}", "remove", "vi", "applied", f"approved by {SECOND}")
    assert len(writes(desk)) == 3


# --- per app, the time a request waits, and every end audited ----------------------------------------


PROD_KEY, STAGING_KEY = "prod-key-0123456789abcdef", "staging-key-0123456789abcdef"


def test_one_app_at_two_approvals_and_another_at_one_keeps_its_single_confirmation(slack: FakeSlack) -> None:
    """DESK_PROD_APPROVALS=2 beside a staging app at the default 1: prod's Confirm waits for a second
    admin, staging's writes at once, with no request posted and no lock shared."""
    with (
        DeskEmulator(sdkappid=1400000101, key=PROD_KEY, languages=[("en", 1), ("zh", 0)]) as prod,
        DeskEmulator(sdkappid=1400000102, key=STAGING_KEY, languages=[("en", 1), ("zh", 0)]) as staging,
    ):
        env = {
            "DESK_APPS": "prod,staging", "DESK_PROD_APPROVALS": "2", "DESK_AUDIT_CHANNEL": AUDIT,
            "DESK_ADMINS": f"{ASKER},{SECOND}", "DESK_PROD_SDKAPPID": str(prod.sdkappid),
            "DESK_PROD_SECRET_KEY": PROD_KEY, "DESK_PROD_API_URL": prod.base_url,
            "DESK_STAGING_SDKAPPID": str(staging.sdkappid), "DESK_STAGING_SECRET_KEY": STAGING_KEY,
            "DESK_STAGING_API_URL": staging.base_url,
        }
        served = BotUnderTest(make_settings(prod, **slack_env(slack, **env)), slack, prod)
        try:
            asked = command_as(served, ASKER, "prod add vi")
            assert "needs two people for every change (DESK_PROD_APPROVALS=2)" in texts(asked)
            waiting = served.reply(click(served, asked, CONFIRM_ACTION).name)
            assert "Waiting for a second admin" in texts(waiting) and writes(prod) == []
            (request,) = requests_posted(slack)

            confirmation = command_as(served, ASKER, "staging add vi")  # while prod's request waits
            assert "two people" not in texts(confirmation) and "approval" not in texts(confirmation).lower()
            done = served.reply(click(served, confirmation, CONFIRM_ACTION).name)
            assert "Vietnamese (vi) was added." in texts(done)
            assert writes(staging) == ["robot_add_language"] and writes(prod) == []
            assert len(requests_posted(slack)) == 1  # staging's change asked nobody

            assert "was added" in decide(served, request, APPROVE_ACTION, SECOND)
            assert writes(prod) == ["robot_add_language"] and writes(staging) == ["robot_add_language"]
        finally:
            served.close()


def test_desk_approval_ttl_is_how_long_a_request_waits(desk: DeskEmulator, slack: FakeSlack, tmp_path: Path) -> None:
    """DESK_APPROVAL_TTL=60: a request still waits 59 s after its Confirm and has expired at 61 s
    (audited, its message updated, Approve refused, nothing written); under the default TTL the
    same 61 s leave it waiting. The manager is the one the bot builds, on a clock the test moves."""
    from bot.boot import build_database, build_desk_apps, build_language_manager, build_web_client
    from bot.deps import DeskApp
    from bot.management.service import LanguageManager
    from bot.management.store import ChangeStore
    from tests.support.clocks import Dial

    def manager_for(clock: Dial[float], **env: str) -> tuple[LanguageManager, DeskApp]:
        settings = make_settings(desk, **slack_env(slack, DESK_ADMINS=f"{ASKER},{SECOND}", DESK_AUDIT_CHANNEL=AUDIT,
                                                   DESK_APPROVALS="2", **env))
        apps = build_desk_apps(settings)
        store = ChangeStore(build_database(settings, apps))
        return build_language_manager(settings, apps, build_web_client(settings), store, clock=clock), apps[0]

    def held(manager: LanguageManager, app: DeskApp) -> str:
        confirmation = manager.request(app, ASKER, "add", "vi")
        request_id = str(button(confirmation, CONFIRM_ACTION)["value"])
        assert "Waiting for a second admin" in texts(manager.confirm(request_id, ASKER))
        return request_id

    clock = Dial(time.time())
    short, app = manager_for(clock, DESK_APPROVAL_TTL="60", DATABASE_URL=f"sqlite:///{tmp_path / 'short.db'}")
    request_id = held(short, app)
    clock.value += 59
    assert short.reconcile() == 0 and short.store.awaiting(app.name) is not None
    clock.value += 2
    assert short.reconcile() == 1 and short.store.awaiting(app.name) is None
    assert "expired" in texts(short.approve(request_id, SECOND)) and writes(desk) == []
    (ended,) = requests_posted(slack)
    assert "expired: no second admin approved it" in texts(ended)
    (entry,) = short.store.history(app.name)
    assert (entry.result, entry.who, entry.requested_by) == ("expired", ASKER, ASKER)

    clock = Dial(time.time())
    default, app = manager_for(clock, DATABASE_URL=f"sqlite:///{tmp_path / 'default.db'}")
    held(default, app)
    clock.value += 61
    assert default.reconcile() == 0 and default.store.awaiting(app.name) is not None  # a day by default


def test_a_cancelled_request_is_audited_with_the_requester_and_who_cancelled(
    bot: BotUnderTest, desk: DeskEmulator, slack: FakeSlack
) -> None:
    """Another admin's Cancel, and the requester's own Reject (a cancellation): each ends the
    request unwritten, audited with both people, said so in the audit channel and the history."""
    store = bot.deps.manager.store if bot.deps.manager is not None else None
    assert store is not None
    waiting = ask(bot)
    assert "Cancelled" in texts(bot.reply(click(bot, waiting, CANCEL_ACTION, user=THIRD).name))
    (latest,) = store.history("default")
    assert (latest.result, latest.who, latest.requested_by) == ("cancelled", THIRD, ASKER)
    said = f"<@{THIRD}> cancelled <@{ASKER}>'s request to add Vietnamese"
    assert any(said in line for line in audit_lines(slack)) and said in history(bot)

    ask(bot, "add fil")
    (_, request) = requests_posted(slack)
    assert "Cancelled: nothing was written" in decide(bot, request, REJECT_ACTION, ASKER)
    latest = store.history("default")[0]
    assert (latest.result, latest.who, latest.requested_by, latest.tag) == ("cancelled", ASKER, ASKER, "fil")
    assert f"<@{ASKER}> cancelled the request to add Filipino" in texts(requests_posted(slack)[1])
    assert writes(desk) == []


def test_a_removal_whose_language_went_meanwhile_no_longer_applies_and_says_why(
    bot: BotUnderTest, desk: DeskEmulator, slack: FakeSlack
) -> None:
    desk.set_faq("ja", [])  # removable when asked
    ask(bot, "remove ja")
    (request,) = requests_posted(slack)
    desk.set_languages([("en", 1), ("zh", 0)])  # removed in the console meanwhile
    answer = decide(bot, request, APPROVE_ACTION, SECOND)
    assert "The list changed since this was asked" in answer
    assert "Japanese (`ja`) is not one of the chatbot's languages; nothing to remove." in answer
    assert writes(desk) == []
    (ended,) = requests_posted(slack)
    assert f"<@{SECOND}> approved <@{ASKER}>'s request to remove Japanese" in texts(ended)
    assert "which no longer applied" in texts(ended) and APPROVE_ACTION not in str(ended["blocks"])
    store = bot.deps.manager.store if bot.deps.manager is not None else None
    assert store is not None
    (entry,) = store.history("default")
    assert (entry.result, entry.who, entry.requested_by, entry.action) == ("superseded", SECOND, ASKER, "remove")
    assert "Waiting for a second admin" in texts(ask(bot, "add fil", SECOND))  # the lock is free again
