"""Workflow Builder steps end to end, over HTTP and Socket Mode: FakeSlack delivers a signed
`function_executed` event and checks the step's completion against the functions of the manifest
`python -m bot manifest` generates (parsed as YAML), so code and manifest cannot disagree."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from bot.desk.errors import desk_error
from bot.sandbox.desk_emulator import DeskEmulator, Fault
from bot.sandbox.slack_emulator import FakeSlack, StepExecution
from bot.slack import steps
from bot.slack.manifest import render_manifest
from tests.support.environment import make_settings
from tests.support.slack_harness import BOT_TOKEN, BotUnderTest, slack_env
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


def test_a_stale_list_completes_marked_stale(desk: DeskEmulator, slack: FakeSlack) -> None:
    bot = BotUnderTest(make_settings(desk, **slack_env(slack, DESK_CACHE_TTL="0")), slack, desk)
    try:
        assert run_step(bot, steps.GET_LANGUAGES, {}).state == "completed"  # the last good list is held
        desk.inject(Fault(code=70500), times=10)
        done = run_step(bot, steps.GET_LANGUAGES, {})
    finally:
        bot.close()
    assert done.state == "completed" and (done.outputs or {})["stale"] is True
    assert (done.outputs or {})["languages"] == "en,zh,ja"


def test_desk_failing_with_no_list_fails_with_the_hint(bot: BotUnderTest, desk: DeskEmulator) -> None:
    desk.inject(Fault(code=70001), times=10)
    done = run_step(bot, steps.GET_LANGUAGES, {})
    assert done.state == "failed" and done.error is not None
    assert desk_error(70001).hint in done.error and "Traceback" not in done.error


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
    from bot import metrics

    def count(outcome: str) -> float:
        text = metrics.exposition()[0].decode()
        line = next((ln for ln in text.splitlines() if ln.startswith("workflow_steps_total{")
                     and f'step="{steps.GET_LANGUAGES}"' in ln and f'outcome="{outcome}"' in ln), None)
        return float(line.rsplit(" ", 1)[1]) if line else 0.0

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


def posted_request(slack: FakeSlack) -> dict[str, Any]:
    assert slack.wait_for(lambda fake: any("*Approval needed*" in str(m) for m in fake.messages(AUDIT)), DONE_WITHIN)
    return next(m for m in slack.messages(AUDIT) if "*Approval needed*" in str(m))


def writes(desk: DeskEmulator) -> list[str]:
    return [call.api for call in desk.calls if call.api in ("robot_add_language", "robot_del_language")]


def decide(bot: BotUnderTest, request: dict[str, Any], action: str, user: str) -> str:
    from tests.support.slack_harness import click, texts

    return texts(bot.reply(click(bot, request, action, user=user).name))


def test_a_change_request_is_approved_applied_once_and_completes_the_step(
    desk: DeskEmulator, slack: FakeSlack
) -> None:
    from bot.management.messages import APPROVE_ACTION
    from tests.support.slack_harness import command_as, texts

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


def test_a_rejected_request_completes_rejected_and_an_expired_one_fails(desk: DeskEmulator, slack: FakeSlack) -> None:
    from bot.management.messages import REJECT_ACTION

    bot = change_bot(desk, slack)
    try:
        rejected = ask_for(bot, action="add", tag="vi")
        assert "Rejected" in decide(bot, posted_request(slack), REJECT_ACTION, SECOND)
        rejected_done = ended(slack, rejected)
        expiring = ask_for(bot, action="add", tag="fil")
        assert slack.wait_for(lambda fake: len([m for m in fake.messages(AUDIT) if "*Approval needed*" in str(m)]) == 2,
                              DONE_WITHIN)
        manager = bot.deps.manager
        assert manager is not None
        real_clock = manager._clock
        manager._clock = lambda: real_clock() + 86401
        manager.reconcile()
        manager.reconcile()  # once
        expired_done = ended(slack, expiring)
    finally:
        bot.close()
    assert writes(desk) == []
    assert rejected_done.state == "completed", [(c.body, c.status) for c in slack.calls() if "functions" in c.method]
    assert (rejected_done.outputs or {})["outcome"] == "rejected"
    assert expired_done.state == "failed" and "expired" in (expired_done.error or "")
    assert len(slack.calls("functions.completeError")) == 1


@pytest.mark.parametrize(("inputs", "says"), [
    ({"action": "add", "tag": "tl"}, "Did you mean fil (Filipino)?"),
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

    from bot.management.messages import APPROVE_ACTION
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
    from bot.management.messages import APPROVE_ACTION

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
    from bot.management.messages import APPROVE_ACTION
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
