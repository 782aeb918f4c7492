"""The Slack side of `python -m bot`, run as a user runs it, in subprocesses: `serve` under real
granian answering signed commands, fast one-line failures at boot, `manifest` and `demo`.

Every process binds and calls loopback only: `HOST=127.0.0.1`, FakeSlack as the Slack Web API
and the Desk emulator behind. Each runs in an empty directory, so no `.env` is read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from slack_sdk.models.blocks import Block

from bot import __version__
from bot.sandbox.desk_emulator import SANDBOX_KEY, DeskEmulator
from bot.sandbox.slack_emulator import FakeSlack, sign, slash_command_body
from tests.support.environment import desk_env
from tests.support.served import Served, assert_one_line_config_error, clean_env, run_bot, start_bot
from tests.support.services import free_port
from tests.support.slack_harness import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, slack_env, texts
from tests.support.tiers import e2e_fixture


@e2e_fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=BOT_TOKEN, app_token=APP_TOKEN) as fake:
        yield fake


# --- serve: real granian ----------------------------------------------------------------------


def test_serve_runs_the_app_under_granian(emulator: DeskEmulator, slack: FakeSlack, tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(**desk_env(emulator), **slack_env(slack), HOST="127.0.0.1", PORT=str(port), LOG_LEVEL="INFO")
    env["HOME"] = str(tmp_path)  # nothing may be written there
    served = Served(start_bot("serve", cwd=tmp_path, env=env), f"http://127.0.0.1:{port}")
    try:
        health = served.wait_until_healthy()
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "version": __version__, "digests": "ok"}
        booted = len(slack.calls())
        assert booted == len(slack.calls("auth.test")) >= 1  # the token is checked at boot
        assert emulator.calls == []  # and /healthz made no call at all
        assert requests.get(f"{served.url}/healthz", timeout=2).status_code == 200
        assert len(slack.calls()) == booted

        def command(text: str, name: str, secret: str = SIGNING_SECRET) -> requests.Response:
            body = slash_command_body(text, response_url=slack.response_url(name))
            return requests.post(f"{served.url}/slack/events", data=body, headers=sign(secret, body), timeout=5)

        assert "`/desk-languages share`" in texts(command("help", "help").json())
        listed = command("", "listed")
        assert (listed.status_code, listed.content) == (200, b"")
        assert slack.wait_for(lambda fake: bool(fake.responses("listed")), timeout=5)
        (reply,) = slack.responses("listed")
        assert "English (`en`) :star: *default*" in texts(reply.body)
        assert "from cache" in texts(command("share", "shared").json())  # this worker's cache
        assert command("", "forged", secret="wrong").status_code == 401
        assert len(emulator.calls) == 1
    finally:
        code, stderr = served.stop()
    assert code == 0, stderr
    assert "Spawning worker-1" in stderr  # granian's own log lines reach our handler
    assert "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []
    for secret in (BOT_TOKEN, SIGNING_SECRET, SANDBOX_KEY):
        assert secret not in stderr


# --- boot failures ----------------------------------------------------------------------------


def test_serve_without_the_signing_secret_exits_2_naming_it(slack: FakeSlack, tmp_path: Path) -> None:
    env = clean_env(DESK_SANDBOX="1", SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=slack.api_url)
    assert_one_line_config_error(run_bot("serve", cwd=tmp_path, env=env), "SLACK_SIGNING_SECRET")
    assert slack.calls() == []  # failed before talking to Slack


def test_serve_with_a_refused_token_exits_2_naming_it(slack: FakeSlack, tmp_path: Path) -> None:
    env = clean_env(DESK_SANDBOX="1", **slack_env(slack, SLACK_BOT_TOKEN="xoxb-revoked-0000"), PORT=str(free_port()))
    assert_one_line_config_error(run_bot("serve", cwd=tmp_path, env=env), "SLACK_BOT_TOKEN")
    assert [call.body for call in slack.calls()] == [{}]  # one auth.test, then nothing


def test_socket_without_the_app_token_exits_2_naming_it(slack: FakeSlack, tmp_path: Path) -> None:
    env = clean_env(DESK_SANDBOX="1", **slack_env(slack, SLACK_SIGNING_SECRET=""))
    assert_one_line_config_error(run_bot("socket", cwd=tmp_path, env=env), "SLACK_APP_TOKEN")


# --- manifest ---------------------------------------------------------------------------------


@pytest.mark.e2e
def test_manifest_fills_in_the_url(tmp_path: Path) -> None:
    result = run_bot("manifest", "--url", "https://x.example.com/", cwd=tmp_path, env=clean_env())
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert "url: https://x.example.com/slack/events" in lines  # the slash command
    assert lines.count("request_url: https://x.example.com/slack/events") == 2  # events, interactivity
    assert "https://APP.example.com" not in result.stdout
    assert "socket_mode_enabled: false" in lines
    for scope in ("- commands", "- chat:write"):
        assert scope in lines
    assert "- command: /desk-languages" in lines


@pytest.mark.e2e
def test_manifest_for_socket_mode_has_no_urls(tmp_path: Path) -> None:
    result = run_bot("manifest", "--socket", cwd=tmp_path, env=clean_env())
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert not [line for line in lines if line.startswith(("url:", "request_url:"))]
    assert "socket_mode_enabled: true" in lines
    assert "is_enabled: true" in lines  # interactivity stays on: the buttons need it
    assert "- command: /desk-languages" in lines


@pytest.mark.e2e
@pytest.mark.parametrize("args", [[], ["--url", "http://x.example.com"], ["--url", "x.example.com"]])
def test_manifest_without_an_https_url_exits_2(tmp_path: Path, args: list[str]) -> None:
    result = run_bot("manifest", *args, cwd=tmp_path, env=clean_env())
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: --url must be the app's public https:// address")


# --- demo -------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_demo_prints_the_list_and_the_block_kit_json(tmp_path: Path) -> None:
    env = clean_env()
    text, as_json, helped = (
        start_bot(*args, cwd=tmp_path, env=env) for args in (["demo"], ["demo", "--json"], ["demo", "help"])
    )
    outputs = [process.communicate(timeout=30) for process in (text, as_json, helped)]
    for process, (_, err) in zip((text, as_json, helped), outputs, strict=True):
        assert process.returncode == 0, err

    shown = outputs[0][0]
    assert shown.startswith("$ /desk-languages\n")
    assert "Desk chatbot languages" in shown
    assert "English (`en`) :star: default" in shown
    assert "Filipino (`fil`)" in shown
    assert "[:arrows_counterclockwise: Refresh]" in shown

    message = json.loads(outputs[1][0])
    assert message["text"].startswith("Desk chatbot languages: English (en, default)")
    assert 0 < len(message["blocks"]) <= 50
    for block in message["blocks"]:
        parsed = Block.parse(block)
        assert parsed is not None
        assert parsed.to_dict() == block  # valid Block Kit, as slack_sdk checks it

    assert "answer delivered in the ack" in outputs[2][0]
    assert "/desk-languages share" in outputs[2][0]
    assert list(tmp_path.iterdir()) == []  # the demo leaves nothing behind


@pytest.mark.e2e
def test_demo_add_confirms_as_the_admin_and_shows_the_new_list(tmp_path: Path) -> None:
    done = run_bot("demo", "staging", "add", "vi", cwd=tmp_path, env=clean_env())
    assert done.returncode == 0, done.stderr
    assert "Add Vietnamese (`vi`) to Staging (sandbox)" in done.stdout
    assert "Vietnamese (vi) was added." in done.stdout and "• Vietnamese (`vi`)" in done.stdout


@pytest.mark.e2e
def test_demo_settings_fil_shows_the_modal_applies_a_fallback_and_status_shows_filipino_ready(tmp_path: Path) -> None:
    done = run_bot("demo", "settings", "fil", cwd=tmp_path, env=clean_env())
    assert done.returncode == 0, done.stderr
    form, review, result = done.stdout.split("+-- Chatbot settings --")[1:4]
    status = done.stdout.split("status refresh")[-1]
    assert "Fallback message: []" in form and "Welcome card questions:" in form and "[Review]" in form
    assert "now: (empty)" in review and "Pasensya na" in review and "[Apply]" in review
    assert "Changed the chatbot settings of Filipino" in result
    filipino = next(line for line in status.splitlines() if "Filipino" in line)
    assert filipino.startswith(":white_check_mark:") and "fallback message set" in filipino
    assert list(tmp_path.iterdir()) == []


@pytest.mark.e2e
def test_demo_plan_shows_drift_and_demo_apply_brings_staging_in_sync(tmp_path: Path) -> None:
    planned = run_bot("demo", "plan", cwd=tmp_path, env=clean_env())
    assert planned.returncode == 0, planned.stderr
    plan = planned.stdout[planned.stdout.index("$ python -m bot plan"):]
    assert "prod (Production (sandbox)): 3 differences, 1 for apply" in plan
    assert "  - fil (Filipino): not by apply: it has 6 live FAQ questions" in plan
    assert "staging (Staging (sandbox)): 5 differences, 5 for apply\n  - th (Thai)\n  + vi (Vietnamese)\n" in plan

    applied = run_bot("demo", "apply", cwd=tmp_path, env=clean_env())
    assert applied.returncode == 0, applied.stderr
    after_apply = applied.stdout.split("$ python -m bot apply --app staging --yes")[1]
    steps, again = after_apply.split("$ python -m bot plan   (in the same demo run)")
    # Thai, a language Desk lists though the bot does not know its tag, can be removed
    made = "  - Thai (th) was deleted.\n  + Vietnamese (vi) was added.\n  ~ Changed the chatbot settings of Vietnamese"
    assert made in steps
    assert "staging (Staging (sandbox)): in sync" in again
    assert "prod (Production (sandbox)): 3 differences" in again  # apply --app staging left prod alone
    assert list(tmp_path.iterdir()) == []  # the sample file lived in a temporary directory


@pytest.mark.e2e
def test_demo_step_runs_each_workflow_step_against_the_emulators(tmp_path: Path) -> None:
    languages = run_bot("demo", "step", "get-languages", cwd=tmp_path, env=clean_env())
    assert languages.returncode == 0, languages.stderr
    assert "completed with outputs:" in languages.stdout and 'default_language = "en"' in languages.stdout
    assert "count = 5" in languages.stdout and "stale = false" in languages.stdout
    readiness = run_bot("demo", "step", "check-readiness", "staging", cwd=tmp_path, env=clean_env())
    assert readiness.returncode == 0, readiness.stderr
    assert 'not_ready = "th"' in readiness.stdout and "all_ready = false" in readiness.stdout
    unknown = run_bot("demo", "step", "get-languages", "nope", cwd=tmp_path, env=clean_env())
    assert unknown.returncode == 1 and "failed: 'nope' is not a configured Desk app" in unknown.stdout
    usage = run_bot("demo", "step", "nothing", cwd=tmp_path, env=clean_env())
    assert usage.returncode == 2 and "get-languages | check-readiness | request-change" in usage.stderr
    change = run_bot("demo", "step", "request-change", cwd=tmp_path, env=clean_env())
    assert change.returncode == 0, change.stderr
    assert "Approval needed: <@U0DEMOASKER> asks to add Vietnamese (`vi`) to Staging" in change.stdout
    assert 'outcome = "applied"' in change.stdout and "Approved by <@U0SANDBOXUSER>" in change.stdout
