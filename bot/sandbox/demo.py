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
import time

import requests

from bot.boot import build_bot, load_configuration
from bot.management.messages import CONFIRM_ACTION
from bot.sandbox.slack_emulator import SANDBOX_USER_ID, FakeSlack, block_action_body, sign, slash_command_body
from bot.slack import blocks
from bot.slack.loopback import LoopbackServer
from bot.terminal import message_to_text


def run_demo(text: str = "", *, as_json: bool = False, timeout: float = 10.0) -> int:
    signing_secret = secrets.token_hex(16)
    with FakeSlack() as slack:
        settings = load_configuration(
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
                "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
            }
        )
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
                if not slack.wait_for(lambda s: bool(s.responses("demo")), timeout=timeout):
                    print("demo: no reply arrived at the response_url", file=sys.stderr)
                    return 1
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
        " | status | staging add vi | history | digest daily 09:00 | anything"
    )
    return 0


def _confirm_button(message: dict[str, object]) -> str | None:
    """The value of a language change's Confirm button in `message`, if it has one."""
    for block in message.get("blocks") or []:  # type: ignore[attr-defined]
        for element in block.get("elements") or []:
            if element.get("action_id") == CONFIRM_ACTION:
                return str(element.get("value"))
    return None
