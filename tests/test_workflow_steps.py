"""Workflow Builder steps end to end, over HTTP and Socket Mode: FakeSlack delivers a signed
`function_executed` event and checks the step's completion against the functions of the manifest
`python -m bot manifest` generates (parsed as YAML), so code and manifest cannot disagree."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.desk.errors import desk_error
from bot.management.messages import APPROVE_ACTION, REJECT_ACTION
from bot.sandbox.desk_emulator import DeskEmulator, Fault
from bot.sandbox.slack_emulator import FakeSlack, StepExecution
from bot.slack import steps
from bot.slack.manifest import render_manifest
from bot.terminal import plain_text
from tests.support.environment import make_settings
from tests.support.slack_harness import BOT_TOKEN, BotUnderTest, slack_env, texts
from tests.support.step_bots import TRANSPORTS, StepBot, step_bot
from tests.support.tiers import e2e_fixture

DONE_WITHIN = 10.0


def generated_functions(socket_mode: bool = False) -> dict[str, Any]:
    manifest = yaml.safe_load(render_manifest(None if socket_mode else "https://bot.example.com",
                                              socket_mode=socket_mode))
    assert "function_executed" in manifest["settings"]["event_subscriptions"]["bot_events"]
    assert manifest["settings"]["org_deploy_enabled"] is True
    assert manifest["settings"]["function_runtime"] == "remote"
    return dict(manifest["functions"])


@e2e_fixture
def desk() -> Iterator[DeskEmulator]:
    with DeskEmulator(languages=[("zh", 0), ("en", 1), ("ja", 0)], rate_limit=50) as emulator:
        yield emulator


@e2e_fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=BOT_TOKEN) as fake:
        fake.functions = generated_functions()
        yield fake


@pytest.fixture
def bot(desk: DeskEmulator, slack: FakeSlack) -> Iterator[BotUnderTest]:
    served = BotUnderTest(make_settings(desk, **slack_env(slack)), slack, desk)
    yield served
    served.close()


def run_step(bot: BotUnderTest, callback_id: str, inputs: dict[str, Any]) -> StepExecution:
    """Deliver the step signed over HTTP; the execution once it has ended (else fail)."""
    execution_id, payload = bot.slack.function_executed_event(callback_id, inputs)
    reply = bot.send(json.dumps(payload), bot.new_name("step"))
    assert reply.status == 200 and reply.elapsed < 3.0
    return ended(bot.slack, execution_id)


def ended(slack: FakeSlack, execution_id: str) -> StepExecution:
    assert slack.wait_for(lambda fake: (fake.execution(execution_id) or StepExecution("", "")).state != "running",
                          timeout=DONE_WITHIN)
    found = slack.execution(execution_id)
    assert found is not None
    return found


def test_get_languages_completes_with_exactly_the_declared_outputs(bot: BotUnderTest, slack: FakeSlack) -> None:
    done = run_step(bot, steps.GET_LANGUAGES, {})
    assert done.state == "completed", done.error
    outputs = done.outputs or {}
    assert outputs["languages"] == "en,zh,ja" and outputs["default_language"] == "en"
    assert outputs["language_names"] == "English (default), Chinese, Japanese"
    assert outputs["count"] == 3 and outputs["stale"] is False and outputs["fetched_at"].endswith("Z")
    declared = slack.functions[steps.GET_LANGUAGES]["output_parameters"]["properties"]
    assert set(outputs) == set(declared)
    # accepted, and not with the bot token: with the execution's workflow token (the fake accepts only those two)
    (completion,) = slack.calls("functions.completeSuccess")
    assert completion.status == 200 and completion.headers.get("Authorization") != f"Bearer {BOT_TOKEN}"


def test_check_readiness_completes_with_the_status_sentence(bot: BotUnderTest, desk: DeskEmulator) -> None:
    done = run_step(bot, steps.CHECK_READINESS, {"app": ""})
    assert done.state == "completed", done.error
    outputs = done.outputs or {}
    report = bot.deps.default_app.client.readiness()
    assert outputs["summary"] == report.summary() and outputs["language_count"] == 3
    assert outputs["ready_count"] == report.ready_count and outputs["all_ready"] is report.ready
    assert outputs["not_ready"] == ",".join(r.language.tag for r in report.languages if not r.ready)


def test_an_unknown_app_fails_without_calling_desk(bot: BotUnderTest, desk: DeskEmulator) -> None:
    desk.reset_calls()
    done = run_step(bot, steps.GET_LANGUAGES, {"app": "prdo"})
    assert done.state == "failed" and "'prdo' is not a configured Desk app" in (done.error or "")
    assert desk.calls == []


def test_the_fake_refuses_outputs_that_do_not_match_the_manifest(slack: FakeSlack) -> None:
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    execution_id, payload = slack.function_executed_event(steps.GET_LANGUAGES, {})
    client = WebClient(token=payload["event"]["bot_access_token"], base_url=slack.api_url)
    good = {"languages": "en", "language_names": "English (default)", "default_language": "en", "count": 1,
            "fetched_at": "2026-12-06T00:00:00Z", "stale": False}
    for wrong in ({**good, "count": "1"}, {**good, "stale": "no"}, {k: v for k, v in good.items() if k != "count"},
                  {**good, "extra": 1}):
        with pytest.raises(SlackApiError, match="parameter_validation_failed"):
            client.functions_completeSuccess(function_execution_id=execution_id, outputs=wrong)
    client.functions_completeSuccess(function_execution_id=execution_id, outputs=good)
    with pytest.raises(SlackApiError, match="execution_not_in_running_state"):
        client.functions_completeSuccess(function_execution_id=execution_id, outputs=good)
    with pytest.raises(SlackApiError, match="execution_not_in_running_state"):
        client.functions_completeError(function_execution_id=execution_id, error="late")


def test_steps_are_counted_by_name_and_outcome(bot: BotUnderTest, desk: DeskEmulator) -> None:
    def count(outcome: str) -> float:
        return step_count(steps.GET_LANGUAGES, outcome)

    before = (count("completed"), count("failed"))
    run_step(bot, steps.GET_LANGUAGES, {})
    run_step(bot, steps.GET_LANGUAGES, {"app": "nope"})
    assert (count("completed"), count("failed")) == (before[0] + 1, before[1] + 1)


@pytest.mark.e2e
def test_a_step_over_socket_mode_completes_and_an_unknown_app_fails(tmp_path: Any) -> None:
    from tests.support.slack_harness import APP_TOKEN
    from tests.support.socket_bot import start_socket_bot
    from tests.support.socket_mode_server import SocketModeFakeSlack

    with SocketModeFakeSlack(token=BOT_TOKEN, app_token=APP_TOKEN) as slack:
        slack.functions = generated_functions(socket_mode=True)
        bot = start_socket_bot(slack, tmp_path)
        try:
            executions = []
            for step, inputs in ((steps.GET_LANGUAGES, {}), (steps.GET_LANGUAGES, {"app": "nope"}),
                                 (steps.CHECK_READINESS, {})):
                execution_id, payload = slack.function_executed_event(step, inputs)
                envelope = slack.socket_event(payload)
                assert slack.socket.wait_ack(envelope).envelope_id == envelope
                executions.append(ended(slack, execution_id))
        finally:
            bot.stop()
    done, unknown, readiness = executions
    assert readiness.state == "completed" and (readiness.outputs or {})["summary"].startswith("3 of 5 languages ready")
    assert set(readiness.outputs or {}) == set(
        slack.functions[steps.CHECK_READINESS]["output_parameters"]["properties"])
    assert done.state == "completed", (done.error, bot.stderr())
    assert set(done.outputs or {}) == set(slack.functions[steps.GET_LANGUAGES]["output_parameters"]["properties"])
    assert (done.outputs or {})["default_language"] == "en" and (done.outputs or {})["stale"] is False
    assert unknown.state == "failed" and "'nope' is not a configured Desk app" in (unknown.error or "")


# --- Request a language change ---------------------------------------------------------------------

ASKER, SECOND, THIRD, GUEST = "U0WFASKER", "U0WFSECOND", "U0WFTHIRD", "U0WFGUEST"
AUDIT = "C0WFAUDIT"


def change_bot(desk: DeskEmulator, slack: FakeSlack, **env: str) -> BotUnderTest:
    environ = {"DESK_ADMINS": f"{ASKER},{SECOND},{THIRD}", "DESK_AUDIT_CHANNEL": AUDIT, **env}
    return BotUnderTest(make_settings(desk, **slack_env(slack, **environ)), slack, desk)


def ask_for(bot: BotUnderTest, **inputs: Any) -> str:
    """Deliver Request a language change; its execution id, once the request is posted."""
    execution_id, payload = bot.slack.function_executed_event(steps.REQUEST_CHANGE, {"requested_by": ASKER, **inputs})
    assert bot.send(json.dumps(payload), bot.new_name("step")).status == 200
    return execution_id


def posted_request(slack: FakeSlack, tag: str = "") -> dict[str, Any]:
    """The request posted in the audit channel (for `tag`, when given), once it is there."""
    def posted(message: dict[str, Any]) -> bool:
        return "*Approval needed*" in str(message) and (not tag or f"(`{tag}`)" in str(message))

    assert slack.wait_for(lambda fake: any(posted(m) for m in fake.messages(AUDIT)), DONE_WITHIN)
    return next(m for m in slack.messages(AUDIT) if posted(m))


def writes(desk: DeskEmulator) -> list[str]:
    return [call.api for call in desk.calls if call.api in ("robot_add_language", "robot_del_language")]


def decide(bot: BotUnderTest, request: dict[str, Any], action: str, user: str) -> str:
    from tests.support.slack_harness import click

    return texts(bot.reply(click(bot, request, action, user=user).name))


def test_a_change_request_is_approved_applied_once_and_completes_the_step(
    desk: DeskEmulator, slack: FakeSlack
) -> None:
    from tests.support.slack_harness import command_as

    bot = change_bot(desk, slack)
    try:
        execution_id = ask_for(bot, action="add", tag="vi", reason="<!channel> customers in Hanoi")
        request = posted_request(slack)
        shown = texts(request)
        assert f"<@{ASKER}> asks to add Vietnamese (`vi`)" in shown and "From a workflow" in shown
        assert "&lt;!channel&gt; customers in Hanoi" in shown and "<!channel>" not in shown
        assert (slack.execution(execution_id) or StepExecution("", "")).state == "running"
        assert "Only these people" in decide(bot, request, APPROVE_ACTION, GUEST)
        assert writes(desk) == [] and (slack.execution(execution_id) or StepExecution("", "")).state == "running"
        assert "Vietnamese (vi) was added." in decide(bot, request, APPROVE_ACTION, SECOND)
        done = ended(slack, execution_id)
        history = texts(command_as(bot, ASKER, "history"))
    finally:
        bot.close()
    assert writes(desk) == ["robot_add_language"]
    assert done.state == "completed" and (done.outputs or {})["outcome"] == "applied"
    assert f"<@{SECOND}>" in (done.outputs or {})["message"]
    assert f"<@{SECOND}> added Vietnamese (`vi`) · requested by <@{ASKER}>" in history


@pytest.mark.parametrize(("inputs", "says"), [
    ({"action": "rename", "tag": "vi"}, "must be add or remove"),
    ({"action": "add", "tag": "vi", "app": "prdo"}, "is not a configured Desk app"),
    ({"action": "remove", "tag": "en"}, "the default language"),
])
def test_a_request_that_cannot_be_asked_fails_and_posts_nothing(
    desk: DeskEmulator, slack: FakeSlack, inputs: dict[str, str], says: str
) -> None:
    bot = change_bot(desk, slack)
    try:
        failed = ended(slack, ask_for(bot, **inputs))
    finally:
        bot.close()
    assert failed.state == "failed" and says in (failed.error or "") and "Traceback" not in (failed.error or "")
    assert slack.messages(AUDIT) == [] and writes(desk) == []


def test_double_approvals_from_two_processes_write_once_and_complete_once(
    desk: DeskEmulator, slack: FakeSlack, tmp_path: Any
) -> None:
    import threading

    from bot.sandbox.slack_emulator import block_action_body
    from tests.support.slack_harness import button

    database = f"sqlite:///{tmp_path / 'shared.db'}"
    one, two = change_bot(desk, slack, DATABASE_URL=database), change_bot(desk, slack, DATABASE_URL=database)
    try:
        execution_id = ask_for(one, action="add", tag="vi")
        value = button(posted_request(slack), APPROVE_ACTION)["value"]
        clicks = [(served, name, block_action_body(APPROVE_ACTION, response_url=slack.response_url(name), value=value,
                                                   user_id=user))
                  for served, name, user in ((one, "w1", SECOND), (two, "w2", SECOND), (one, "w3", THIRD),
                                             (two, "w4", THIRD))]
        threads = [threading.Thread(target=served.send, args=(body, name)) for served, name, body in clicks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        done = ended(slack, execution_id)
    finally:
        one.close()
        two.close()
    assert writes(desk) == ["robot_add_language"]
    assert done.state == "completed" and (done.outputs or {})["outcome"] == "applied"
    assert [c.status for c in slack.calls("functions.completeSuccess")] == [200]


def test_under_two_person_approval_the_requester_cannot_approve(desk: DeskEmulator, slack: FakeSlack) -> None:

    bot = change_bot(desk, slack, DESK_APPROVALS="2")
    try:
        execution_id = ask_for(bot, action="add", tag="vi")
        request = posted_request(slack)
        assert "another admin" in decide(bot, request, APPROVE_ACTION, ASKER)
        assert writes(desk) == [] and (slack.execution(execution_id) or StepExecution("", "")).state == "running"
        decide(bot, request, APPROVE_ACTION, SECOND)
        done = ended(slack, execution_id)
    finally:
        bot.close()
    assert writes(desk) == ["robot_add_language"] and (done.outputs or {})["outcome"] == "applied"


@pytest.mark.e2e
def test_a_change_request_over_socket_mode_is_approved_and_completes(tmp_path: Any) -> None:
    from tests.support.slack_harness import APP_TOKEN, button
    from tests.support.socket_bot import start_socket_bot
    from tests.support.socket_mode_server import SocketModeFakeSlack

    with SocketModeFakeSlack(token=BOT_TOKEN, app_token=APP_TOKEN) as slack:
        slack.functions = generated_functions(socket_mode=True)
        bot = start_socket_bot(slack, tmp_path, DESK_ADMINS=f"{ASKER},{SECOND}", DESK_AUDIT_CHANNEL=AUDIT,
                               DESK_APPS="prod,staging")
        try:
            execution_id, payload = slack.function_executed_event(
                steps.REQUEST_CHANGE, {"app": "staging", "requested_by": ASKER, "action": "add", "tag": "vi"})
            slack.socket.wait_ack(slack.socket_event(payload))
            value = button(posted_request(slack), APPROVE_ACTION)["value"]
            slack.socket.wait_ack(slack.socket_click(APPROVE_ACTION, response_url=slack.response_url("ok"),
                                                     value=value, user_id=SECOND))
            done = ended(slack, execution_id)
        finally:
            bot.stop()
    assert done.state == "completed", (done.error, bot.stderr())
    assert (done.outputs or {})["outcome"] == "applied"
    assert f"<@{SECOND}>" in (done.outputs or {})["message"]


# --- the same scenarios over HTTP and Socket Mode ----------------------------------------------------

@pytest.fixture(params=[pytest.param(transport, marks=pytest.mark.e2e) for transport in TRANSPORTS])
def start(request: pytest.FixtureRequest, desk: DeskEmulator, tmp_path: Path) -> Iterator[Callable[..., StepBot]]:
    """Start the bot over this test's transport (HTTP, then Socket Mode), with `env` on top."""
    transport = str(request.param)
    with ExitStack() as stack:
        def started(**env: str) -> StepBot:
            return stack.enter_context(step_bot(transport, desk, tmp_path, generated_functions(transport == "socket"),
                                                **env))

        yield started


def change_env(**env: str) -> dict[str, str]:
    return {"DESK_ADMINS": f"{ASKER},{SECOND},{THIRD}", "DESK_AUDIT_CHANNEL": AUDIT, **env}


def deliver_and_end(bot: StepBot, callback_id: str, inputs: dict[str, Any]) -> StepExecution:
    return ended(bot.slack, bot.deliver(callback_id, inputs))


def asked_to_add_vi(start: Callable[..., StepBot]) -> tuple[StepBot, str, dict[str, Any]]:
    """A bot with admins, asked by a workflow to add vi: (the bot, the execution, the posted request)."""
    bot = start(**change_env())
    execution_id = bot.deliver(steps.REQUEST_CHANGE, {"requested_by": ASKER, "action": "add", "tag": "vi"})
    return bot, execution_id, posted_request(bot.slack)


@pytest.mark.parametrize(("step", "command"), [(steps.GET_LANGUAGES, ""), (steps.CHECK_READINESS, "status")])
def test_desk_failing_fails_the_step_with_the_slash_commands_words(
    start: Callable[..., StepBot], desk: DeskEmulator, step: str, command: str
) -> None:
    bot = start()
    desk.inject(Fault(code=70001), times=-1)
    failed = deliver_and_end(bot, step, {})
    said = bot.command(command)
    assert failed.state == "failed" and failed.error is not None
    assert desk_error(70001).hint in failed.error and "Traceback" not in failed.error
    assert failed.error == plain_text(said["text"])  # the very words `/desk-languages [status]` shows


def test_a_stale_list_completes_marked_stale(start: Callable[..., StepBot], desk: DeskEmulator) -> None:
    bot = start(DESK_CACHE_TTL="0")
    assert deliver_and_end(bot, steps.GET_LANGUAGES, {}).state == "completed"  # the last good list is held
    desk.inject(Fault(code=70500), times=-1)
    done = deliver_and_end(bot, steps.GET_LANGUAGES, {})
    assert done.state == "completed" and (done.outputs or {})["stale"] is True, done.error
    assert (done.outputs or {})["languages"] == "en,zh,ja"


def test_check_readiness_of_an_unknown_app_fails_without_calling_desk(
    start: Callable[..., StepBot], desk: DeskEmulator
) -> None:
    bot = start()
    desk.reset_calls()
    failed = deliver_and_end(bot, steps.CHECK_READINESS, {"app": "prdo"})
    assert failed.state == "failed" and "'prdo' is not a configured Desk app" in (failed.error or "")
    assert desk.calls == []


def test_a_rejected_request_completes_rejected_and_writes_nothing(
    start: Callable[..., StepBot], desk: DeskEmulator
) -> None:
    bot, execution_id, request = asked_to_add_vi(start)
    assert "Rejected" in bot.decide(request, REJECT_ACTION, SECOND)
    done = ended(bot.slack, execution_id)
    assert done.state == "completed" and (done.outputs or {})["outcome"] == "rejected"
    assert f"Rejected by <@{SECOND}>" in (done.outputs or {})["message"]
    assert writes(desk) == []


def test_a_non_admins_click_is_refused_and_the_step_keeps_running(
    start: Callable[..., StepBot], desk: DeskEmulator
) -> None:
    bot, execution_id, request = asked_to_add_vi(start)
    for action in (APPROVE_ACTION, REJECT_ACTION):
        assert "Only these people" in bot.decide(request, action, GUEST)
    assert writes(desk) == [] and (bot.slack.execution(execution_id) or StepExecution("", "")).state == "running"
    assert "Vietnamese (vi) was added." in bot.decide(request, APPROVE_ACTION, SECOND)
    assert (ended(bot.slack, execution_id).outputs or {})["outcome"] == "applied"
    assert writes(desk) == ["robot_add_language"]


def test_an_expired_request_fails_the_step_and_writes_nothing(
    start: Callable[..., StepBot], desk: DeskEmulator
) -> None:
    bot, execution_id, request = asked_to_add_vi(start)
    time_is_up(bot.database)
    assert "expired" in bot.decide(request, APPROVE_ACTION, SECOND)
    failed = ended(bot.slack, execution_id)
    assert failed.state == "failed" and "expired: no admin decided within 24 hours" in (failed.error or "")
    assert writes(desk) == [] and len(bot.slack.calls("functions.completeError")) == 1
    assert not bot.slack.calls("functions.completeSuccess")


def test_an_unknown_tag_fails_at_once_posting_and_storing_nothing(
    start: Callable[..., StepBot], desk: DeskEmulator
) -> None:
    bot = start(**change_env())
    failed = deliver_and_end(bot, steps.REQUEST_CHANGE, {"requested_by": ASKER, "action": "add", "tag": "tl"})
    assert failed.state == "failed" and "Did you mean fil (Filipino)?" in (failed.error or "")
    assert bot.slack.messages(AUDIT) == [] and not bot.slack.calls("chat.postMessage") and writes(desk) == []
    assert stored_requests(bot.database) == []


def time_is_up(database: Path) -> None:
    """Every request waiting in `database` is due: its expiry moved into the past, as a day's wait would."""
    with closing(sqlite3.connect(database, isolation_level=None)) as conn:
        conn.execute("UPDATE language_change_requests SET expires_at = 0 WHERE state = 'awaiting'")


def stored_requests(database: Path) -> list[tuple[str, str | None, float | None]]:
    """(state, approval_ts, step_completed_at) of every request in `database`."""
    with closing(sqlite3.connect(database, isolation_level=None)) as conn:
        return list(conn.execute("SELECT state, approval_ts, step_completed_at FROM language_change_requests"))


# --- every path ends the step once, and records it ---------------------------------------------------

def functions_calls(slack: FakeSlack) -> list[str]:
    return [call.method for call in slack.calls() if call.method.startswith("functions.")]


def test_a_request_that_cannot_be_posted_fails_the_step_once_and_is_never_completed_again(
    desk: DeskEmulator, slack: FakeSlack, tmp_path: Path
) -> None:
    slack.script("chat.postMessage", body={"ok": False, "error": "not_in_channel"}, channel="C0WFELSEWHERE", times=-1)
    database = tmp_path / "bot.db"
    bot = change_bot(desk, slack, DATABASE_URL=f"sqlite:///{database}")
    try:
        failed = ended(slack, ask_for(bot, action="add", tag="vi", channel="C0WFELSEWHERE"))
        manager = bot.deps.manager
        assert manager is not None
        manager.reconcile()
        manager.reconcile()
        assert functions_calls(slack) == ["functions.completeError"]  # once, and no reconcile tries again
        [(state, posted_ts, completed_at)] = stored_requests(database)
        assert (state, posted_ts) == ("cancelled", None) and completed_at is not None  # recorded as ended
        asked_again = ask_for(bot, action="add", tag="vi")  # the app's lock was freed
        posted_request(slack)
    finally:
        bot.close()
    assert failed.state == "failed" and "could not be posted for the admins in <#C0WFELSEWHERE>" in (failed.error or "")
    assert "invite it" in (failed.error or "") and "Traceback" not in (failed.error or "")
    assert (slack.execution(asked_again) or StepExecution("", "")).state == "running" and writes(desk) == []


def test_a_database_failing_after_the_post_withdraws_the_request_and_fails_the_step_once(
    desk: DeskEmulator, slack: FakeSlack, tmp_path: Path
) -> None:
    database = tmp_path / "bot.db"
    bot = change_bot(desk, slack, DATABASE_URL=f"sqlite:///{database}")
    slack.script("chat.postMessage", channel=AUDIT, delay=1.5)  # posted at once, answered late: time to break
    try:
        execution_id = ask_for(bot, action="add", tag="vi")
        assert slack.wait_for(lambda fake: bool(fake.calls("chat.postMessage")), DONE_WITHIN)
        with closing(sqlite3.connect(database, isolation_level=None)) as conn:  # the database fails under it
            conn.execute("ALTER TABLE language_change_requests RENAME TO parked_requests")
            failed = ended(slack, execution_id)
            conn.execute("ALTER TABLE parked_requests RENAME TO language_change_requests")
        (post,) = slack.calls("chat.postMessage")
        as_posted = {"blocks": post.body["blocks"]}  # the live Approve button, as a stale client still shows it
        (shown,) = slack.messages(AUDIT)
        refused = decide(bot, as_posted, APPROVE_ACTION, SECOND)
        manager = bot.deps.manager
        assert manager is not None
        manager.reconcile()
        assert functions_calls(slack) == ["functions.completeError"]  # the listener's, once
        assert stored_requests(database)[0][0] == "awaiting"  # it holds the app's lock: nobody can decide it
        with closing(sqlite3.connect(database, isolation_level=None)) as conn:  # two minutes later
            conn.execute("UPDATE language_change_requests SET decided_at = decided_at - 121")
        manager.reconcile()  # withdrawn: the lock is freed, and its step's end recorded
        manager.reconcile()
        [(state, _, completed_at)] = stored_requests(database)
    finally:
        bot.close()
    assert failed.state == "failed" and "database did not answer" in (failed.error or "")
    assert "withdrawn" in texts(shown) and APPROVE_ACTION not in json.dumps(shown["blocks"])  # not offered any more
    assert "withdrawn" in refused and writes(desk) == []
    assert state == "cancelled" and completed_at is not None
    # the withdrawal tried to end the step once more; Slack said it had ended, so it was never tried again
    assert functions_calls(slack) == ["functions.completeError", "functions.completeError"]
    assert [c.status for c in slack.calls("functions.completeError")] == [200, 200]


def test_a_completion_slack_says_has_ended_is_recorded_and_never_retried(
    desk: DeskEmulator, slack: FakeSlack
) -> None:
    from slack_sdk import WebClient

    bot = change_bot(desk, slack)
    try:
        execution_id, payload = slack.function_executed_event(
            steps.REQUEST_CHANGE, {"requested_by": ASKER, "action": "add", "tag": "vi"})
        assert bot.send(json.dumps(payload), bot.new_name("step")).status == 200
        request = posted_request(slack)
        # Slack ends the step on its side first (the workflow was cancelled, or timed out)
        WebClient(token=payload["event"]["bot_access_token"], base_url=slack.api_url).functions_completeError(
            function_execution_id=execution_id, error="the workflow was cancelled")
        assert "Rejected" in decide(bot, request, REJECT_ACTION, SECOND)
        manager = bot.deps.manager
        assert manager is not None
        manager.reconcile()
        manager.reconcile()
    finally:
        bot.close()
    (late,) = slack.calls("functions.completeSuccess")  # tried once, answered execution_not_in_running_state
    assert late.status == 200 and functions_calls(slack) == ["functions.completeError", "functions.completeSuccess"]


def test_one_request_per_app_waits_and_the_next_is_told_who_holds_it(desk: DeskEmulator, slack: FakeSlack) -> None:
    bot = change_bot(desk, slack)  # one approver: an admin's decision suffices
    try:
        first = ask_for(bot, action="add", tag="vi")
        request = posted_request(slack)
        second = ask_for(bot, action="add", tag="fil")
        refused = ended(slack, second)
        assert len(slack.messages(AUDIT)) == 1  # nothing posted for the second
        decide(bot, request, REJECT_ACTION, SECOND)
        ended(slack, first)
        third = ask_for(bot, action="add", tag="fil")  # its end freed the app
        assert slack.wait_for(lambda fake: len(fake.messages(AUDIT)) >= 2, DONE_WITHIN)
    finally:
        bot.close()
    said = refused.error or ""
    assert refused.state == "failed" and "takes one change request from workflows at a time" in said
    assert f"<@{ASKER}>'s request to add vi has been waiting since " in said and " UTC for an admin's decision" in said
    assert "second admin" not in said and "<!date" not in said
    assert (slack.execution(third) or StepExecution("", "")).state == "running"


def test_a_request_fails_quietly_when_slack_cannot_take_the_failure(
    desk: DeskEmulator, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    slack.script("functions.completeError", status=0, times=-1)  # every answer to the failure is lost
    bot = change_bot(desk, slack)
    try:
        with caplog.at_level(logging.INFO):
            ask_for(bot, action="add", tag="tl")
            assert slack.wait_for(lambda fake: bool(fake.calls("functions.completeError")), DONE_WITHIN)
            assert slack.wait_for(lambda _: any("could not be failed either" in r.getMessage()
                                                for r in caplog.records), DONE_WITHIN)
    finally:
        bot.close()
    (line,) = [r.getMessage() for r in caplog.records if "could not be failed either" in r.getMessage()]
    assert line.startswith(f"the workflow step {steps.REQUEST_CHANGE} could not be failed either (")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert BOT_TOKEN not in logged and "xwfp-" not in logged
    assert not any(r.exc_info for r in caplog.records if r.name.startswith(("bot", "handlers")))  # no traceback


def test_the_request_step_is_counted_when_asked_and_again_when_it_ends(
    desk: DeskEmulator, slack: FakeSlack, tmp_path: Path
) -> None:
    database = tmp_path / "bot.db"
    bot = change_bot(desk, slack, DATABASE_URL=f"sqlite:///{database}")
    outcomes = ("requested", "failed", "applied", "rejected", "expired", "not applied")
    before = {outcome: step_count(steps.REQUEST_CHANGE, outcome) for outcome in outcomes}
    try:
        for tag, action, user in (("vi", APPROVE_ACTION, SECOND), ("fil", REJECT_ACTION, SECOND),
                                  ("id", APPROVE_ACTION, SECOND)):
            execution_id = ask_for(bot, action="add", tag=tag)
            request = posted_request(slack, tag)
            if tag == "id":
                time_is_up(database)
            said = decide(bot, request, action, user)
            assert ended(slack, execution_id).state != "running", said
        ended(slack, ask_for(bot, action="add", tag="tl"))  # cannot be asked
    finally:
        bot.close()
    counted = {outcome: step_count(steps.REQUEST_CHANGE, outcome) - before[outcome] for outcome in outcomes}
    assert counted == {"requested": 3, "failed": 1, "applied": 1, "rejected": 1, "expired": 1, "not applied": 0}


def step_count(step: str, outcome: str) -> float:
    from bot import metrics

    text = metrics.exposition()[0].decode()
    line = next((ln for ln in text.splitlines() if ln.startswith("workflow_steps_total{")
                 and f'step="{step}"' in ln and f'outcome="{outcome}"' in ln), None)
    return float(line.rsplit(" ", 1)[1]) if line else 0.0
