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

from bot import blocks
from bot.boot import build_bot, load_configuration
from bot.loopback import LoopbackServer
from bot.slack_sandbox import FakeSlack, sign, slash_command_body
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
                "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
            }
        )
        with LoopbackServer(build_bot(settings).wsgi) as server:
            response_url = slack.response_url("demo")
            body = slash_command_body(text, response_url=response_url)
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
    if as_json:
        print(json.dumps(reply, indent=2, ensure_ascii=False))
        return 0
    print(f"$ /desk-languages {text}".rstrip())
    print(f"(acknowledged in {ack_ms:.0f} ms; answer delivered {via})\n")
    print(message_to_text(reply))
    print(
        "\nTry also: python -m bot demo share | default | refresh | help | apps | compare | staging"
        " | digest daily 09:00 | anything"
    )
    return 0
