"""`python -m bot demo`: the whole path, with no Slack and no Tencent account.

It starts the embedded Desk emulator and a loopback stand-in for Slack, builds the
real Bolt app, serves it over real HTTP, sends it a slash command signed exactly as
Slack signs one, and prints the reply a Slack user would see.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from bot.boot import build_bot, build_cli_manager, load_configuration, load_declared_state
from bot.changecontrol.apply import apply_plans
from bot.changecontrol.plan import AppPlan, plan_text, read_plan
from bot.config import Settings
from bot.deps import DeskApp
from bot.management.messages import APPROVE_ACTION, CONFIRM_ACTION
from bot.management.settings_editor import SettingsEditor
from bot.management.settings_form import FALLBACK_BLOCK
from bot.management.settings_views import FORM_CALLBACK
from bot.sandbox.slack_emulator import (
    SANDBOX_USER_ID,
    FakeSlack,
    StepExecution,
    block_action_body,
    sign,
    slash_command_body,
    view_submission_body,
)
from bot.slack import blocks
from bot.slack.loopback import LoopbackServer
from bot.slack.steps import REQUEST_CHANGE, STEPS, manifest_functions
from bot.terminal import message_to_text, view_to_text


def _demo_settings(slack: FakeSlack, signing_secret: str, **more: str) -> Settings:
    return load_configuration(
        {
            "DESK_SANDBOX": "1",
            # Two emulated apps with different lists, so `apps` and `compare` show something.
            "DESK_APPS": "prod,staging",
            "DESK_PROD_LABEL": "Production (sandbox)",
            "DESK_STAGING_LABEL": "Staging (sandbox)",
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_SIGNING_SECRET": signing_secret,
            "SLACK_API_URL": slack.api_url,
            "DATABASE_URL": "sqlite://",  # in memory: the demo leaves nothing behind
            "DIGEST_TICKER": "0",
            "DESK_ADMINS": SANDBOX_USER_ID,  # the demo's user may add and remove languages
            "DESK_STATE_FILE": "none",  # a desk-languages.toml where the demo runs is not the sample apps'
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
            **more,
        }
    )


def run_demo(text: str = "", *, as_json: bool = False, timeout: float = 10.0) -> int:
    if text.strip() in ("plan", "apply"):
        return change_control_demo(apply=text.strip() == "apply")
    if text.split()[:1] == ["step"]:
        return step_demo(text.split()[1:], timeout=timeout)
    signing_secret = secrets.token_hex(16)
    with FakeSlack() as slack:
        settings = _demo_settings(slack, signing_secret)
        with LoopbackServer(build_bot(settings).wsgi) as server:
            response_url = slack.response_url("demo")
            body = slash_command_body(text, response_url=response_url, trigger_id=slack.trigger_id())
            started = time.monotonic()
            ack = requests.post(f"{server.url}/slack/events", data=body, headers=sign(signing_secret, body), timeout=5)
            ack_ms = (time.monotonic() - started) * 1000
            if ack.status_code != 200:
                print(f"demo: the app answered HTTP {ack.status_code}: {ack.text[:200]}", file=sys.stderr)
                return 1
            # A `status` that has to ask Desk acks with what it is checking; the answer follows.
            if ack.content and blocks.PROGRESS not in ack.json().get("text", ""):
                reply, via = ack.json(), "in the ack"
            else:
                if not slack.wait_for(lambda s: bool(s.responses("demo") or s.modal_stack()), timeout=timeout):
                    print("demo: no reply arrived at the response_url", file=sys.stderr)
                    return 1
                if not slack.responses("demo"):  # `settings TAG` opened a modal
                    return _settings_walkthrough(text, slack, server.url, signing_secret, ack_ms, timeout)
                reply, via = slack.responses("demo")[0].body, "through the response_url"
            confirm = _confirm_button(reply)
            result = None
            if confirm is not None:  # `add`/`remove`: click Confirm as the admin, signed as Slack signs it
                clicked = block_action_body(
                    CONFIRM_ACTION,
                    response_url=slack.response_url("click"),
                    value=confirm,
                    trigger_id=slack.trigger_id(),
                )
                signed = sign(signing_secret, clicked)
                requests.post(f"{server.url}/slack/events", data=clicked, headers=signed, timeout=5)
                if slack.wait_for(lambda s: bool(s.responses("click")), timeout=timeout):
                    result = slack.responses("click")[0].body
    if as_json:
        print(json.dumps(reply, indent=2, ensure_ascii=False))
        return 0

    print(f"$ /desk-languages {text}".rstrip())
    print(f"(acknowledged in {ack_ms:.0f} ms; answer delivered {via})\n")
    print(message_to_text(reply))
    if result is not None:
        print("\n(Confirm clicked by the admin; the confirmation is replaced by:)\n")
        print(message_to_text(result))
    print(
        "\nTry also: python -m bot demo share | default | refresh | help | apps | compare | staging"
        " | status | staging add vi | settings fil | history | digest daily 09:00 | plan | apply"
        " | step get-languages | step check-readiness staging | step request-change | anything"
    )
    return 0


def _confirm_button(message: dict[str, object]) -> str | None:
    """The value of a language change's Confirm button in `message`, if it has one."""
    return _button_value(message, CONFIRM_ACTION)


DEMO_FALLBACK = "Pasensya na, hindi ko naintindihan. Subukan muli o humingi ng tulong sa isang tao."


def _settings_walkthrough(text: str, slack: FakeSlack, url: str, secret: str, ack_ms: float, timeout: float) -> int:
    """`demo settings TAG`: the modal as text, a fallback message filled in and reviewed, Apply
    pressed, each step signed as Slack signs it; then `status refresh` in the same run (the
    emulator's state lives as long as the demo)."""
    def post(body: str) -> requests.Response:
        return requests.post(f"{url}/slack/events", data=body, headers=sign(secret, body), timeout=5)

    def top(callback: str | None = None) -> dict[str, Any] | None:
        def ready(fake: FakeSlack) -> bool:
            stack = fake.modal_stack()
            return bool(stack) and (callback is None or stack[-1].get("callback_id") == callback)
        return slack.modal_stack()[-1] if slack.wait_for(ready, timeout=timeout) else None

    print(f"$ /desk-languages {text}".rstrip())
    print(f"(acknowledged in {ack_ms:.0f} ms; a modal opened at once, then filled from Desk)\n")
    form = top(FORM_CALLBACK)
    if form is None:
        shown = slack.modal_stack()
        print(view_to_text(shown[-1]) if shown else "demo: the modal did not open", file=sys.stderr)
        return 1
    print(view_to_text(form))
    print(f"\n(The admin types a fallback message and presses Review:)\n  {DEMO_FALLBACK}\n")
    answer = post(view_submission_body(form, {FALLBACK_BLOCK: DEMO_FALLBACK}, trigger_id=slack.trigger_id()))
    outcome = slack.answer_submission(form["id"], answer.json() if answer.content else None)
    if outcome.action != "update" or outcome.view is None:
        print(f"demo: the review was not shown ({outcome.errors or outcome.problems})", file=sys.stderr)
        return 1
    print(view_to_text(outcome.view))
    print("\n(Apply pressed:)\n")
    applied = post(view_submission_body(outcome.view, trigger_id=slack.trigger_id()))
    slack.answer_submission(outcome.view["id"], applied.json() if applied.content else None)
    slack.wait_for(lambda fake: bool(fake.modal_stack()) and "Applying" not in json.dumps(fake.modal_stack()[-1]),
                   timeout=timeout)
    print(view_to_text(slack.modal_stack()[-1]))
    status = slash_command_body("status refresh", response_url=slack.response_url("status"),
                                trigger_id=slack.trigger_id())
    post(status)
    if slack.wait_for(lambda fake: bool(fake.responses("status")), timeout=timeout):
        print("\n$ /desk-languages status refresh   (in the same demo run)\n")
        print(message_to_text(slack.responses("status")[0].body))
    return 0


# What the demo's team agreed its two emulated apps serve (docs/change-control.md). Production
# differs from its emulator in ways apply can and cannot change; staging in ways it can.
SAMPLE_STATE = """\
# desk-languages.toml: the languages each Desk app serves, reviewed in Git (docs/change-control.md)

[prod]
languages = ["en", "zh", "ja", "vi", "id"]   # Filipino out, Indonesian in
default = "en"

[prod.require]        # what status and plan require of every language
faq_ratio = 0.5

[prod.settings.vi]
welcome_card = true

[staging]
languages = ["en", "zh", "ja", "vi"]         # Thai out, Vietnamese in

[staging.settings.vi]
fallback_message = "Xin lỗi, tôi chưa hiểu. Bạn hãy hỏi cách khác, hoặc gặp nhân viên."
welcome_card = true
welcome_card_questions = ["Đơn hàng của tôi ở đâu?", "Gặp nhân viên"]
"""


def step_demo(words: list[str], *, timeout: float = 10.0) -> int:
    """`demo step get-languages [APP]` (or `check-readiness`, or `request-change [APP] [add|remove TAG]`):
    the Workflow Builder step run as Slack runs it, a signed `function_executed` event, and the
    outputs it completed with (checked by the fake Slack against the manifest's declaration). For a
    change request, the request posted to the audit channel is shown and a second admin approves it."""
    chosen = next((step for step in STEPS if words[:1] == [step.demo_name]), None)
    if chosen is None:
        names = " | ".join(step.demo_name for step in STEPS)
        print(f"usage: python -m bot demo step {{{names}}} [APP] (request-change: [APP] [add|remove TAG])",
              file=sys.stderr)
        return 2
    inputs: dict[str, Any] = {"app": words[1]} if len(words) > 1 else {}
    if chosen.callback_id == REQUEST_CHANGE:
        action, tag = (words[2], words[3]) if len(words) > 3 else ("add", "vi")
        inputs = {"app": words[1] if len(words) > 1 else "staging", "action": action, "tag": tag,
                  "requested_by": DEMO_REQUESTER, "reason": "Customers in Vietnam asked for it"}
    signing_secret = secrets.token_hex(16)
    approval: str | None = None
    with FakeSlack() as slack:
        slack.functions = manifest_functions()
        settings = _demo_settings(slack, signing_secret, DESK_AUDIT_CHANNEL=DEMO_AUDIT_CHANNEL,
                                  DESK_ADMINS=f"{SANDBOX_USER_ID},{DEMO_REQUESTER}")
        with LoopbackServer(build_bot(settings).wsgi) as server:
            execution_id, payload = slack.function_executed_event(chosen.callback_id, inputs)

            def post(body: str) -> None:
                requests.post(f"{server.url}/slack/events", data=body, headers=sign(signing_secret, body), timeout=5)

            def ended(fake: FakeSlack) -> bool:
                return (fake.execution(execution_id) or _RUNNING).state != "running"

            post(json.dumps(payload))
            if chosen.callback_id == REQUEST_CHANGE and slack.wait_for(
                lambda fake: bool(fake.messages(DEMO_AUDIT_CHANNEL)) or ended(fake), timeout=timeout
            ) and slack.messages(DEMO_AUDIT_CHANNEL):
                request = slack.messages(DEMO_AUDIT_CHANNEL)[0]
                approval = message_to_text(request)
                value = _button_value(request, APPROVE_ACTION)
                if value is not None:  # the second admin (the demo's user) approves, signed as Slack signs it
                    post(block_action_body(APPROVE_ACTION, response_url=slack.response_url("approve"), value=value,
                                           trigger_id=slack.trigger_id()))
            slack.wait_for(ended, timeout=timeout)
            done = slack.execution(execution_id) or _RUNNING
    print(f"Workflow step: {chosen.title} ({chosen.callback_id}), inputs {json.dumps(inputs)}")
    if approval is not None:
        print(f"\n(posted to the audit channel for the app's admins:)\n{approval}\n")
        print(f"(approved by the admin {SANDBOX_USER_ID}, not the requester {DEMO_REQUESTER})\n")
    if done.state == "completed":
        print("completed with outputs:")
        for name, value in (done.outputs or {}).items():
            print(f"  {name} = {json.dumps(value, ensure_ascii=False)}")
        return 0
    print(f"{done.state}: {done.error or 'no completion arrived'}")
    return 1


DEMO_REQUESTER = "U0DEMOASKER"
DEMO_AUDIT_CHANNEL = "C0DEMOAUDIT"


def _button_value(message: dict[str, Any], action_id: str) -> str | None:
    """The value of the button `action_id` in `message`, if it has one."""
    for block in message.get("blocks") or []:
        for element in block.get("elements") or []:
            if element.get("action_id") == action_id:
                return str(element.get("value"))
    return None


_RUNNING = StepExecution("", "")


def change_control_demo(*, apply: bool) -> int:
    """`demo plan`: the two emulated apps against a sample desk-languages.toml written to a
    temporary directory; `demo apply`: the plan, `apply --app staging --yes`, and the plan again."""
    with tempfile.TemporaryDirectory(prefix="desk-languages-demo-") as directory:
        path = Path(directory) / "desk-languages.toml"
        path.write_text(SAMPLE_STATE, encoding="utf-8")
        settings = load_configuration({
            "DESK_SANDBOX": "1",
            "DESK_APPS": "prod,staging",
            "DESK_PROD_LABEL": "Production (sandbox)",
            "DESK_STAGING_LABEL": "Staging (sandbox)",
            "DATABASE_URL": "sqlite://",
            "DIGEST_TICKER": "0",
            "DESK_STATE_FILE": str(path),
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
        })
        state = load_declared_state(settings)
        assert state is not None
        manager, apps, _ = build_cli_manager(settings)  # no Slack token: the audit stays in the database

        def show() -> list[tuple[str, DeskApp, AppPlan]]:
            plans = [(f"{app.name} ({app.render.title})", app, read_plan(app, state.app(app.name))) for app in apps]
            print(plan_text(state, [(heading, plan) for heading, _, plan in plans]))
            return plans

        print(f"{path.name} (written to a temporary directory for this demo):\n")
        print("\n".join(f"  {line}" for line in SAMPLE_STATE.splitlines()))
        print("\n$ python -m bot plan\n")
        plans = show()
        if not apply:
            print("\n(Exit code 4: changes pending. Try also: python -m bot demo apply)")
            return 0
        staging = [(heading, app, plan) for heading, app, plan in plans if app.name == "staging"]
        print("\n$ python -m bot apply --app staging --yes")
        _, stopped = apply_plans(staging, manager, SettingsEditor(manager), "apply:demo", say=print)
        if stopped:
            return 1
        print("\n$ python -m bot plan   (in the same demo run)\n")
        show()
    return 0
