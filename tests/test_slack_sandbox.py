"""FakeSlack driven by the real slack_sdk clients over loopback, and the signing helpers."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from urllib.parse import parse_qs, quote

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from bot.sandbox.slack_emulator import (
    FakeSlack,
    Recorded,
    block_action_body,
    sign,
    slash_command_body,
)
from tests.support.tiers import e2e_fixture

TOKEN = "xoxb-sandbox-token"
SECRET = "sandbox-signing-secret"
METADATA = {"event_type": "channel_digest", "event_payload": {"period": "2026-W48"}}


@e2e_fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack(token=TOKEN) as running:
        yield running


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    return WebClient(token=TOKEN, base_url=fake.api_url, timeout=5)


def test_auth_test_answers_the_sandbox_identity(fake: FakeSlack, client: WebClient) -> None:
    result = client.auth_test()
    assert result["ok"] is True
    assert (result["team_id"], result["user_id"], result["bot_id"]) == (
        "T0SANDBOX",
        "U0SANDBOXBOT",
        "B0SANDBOX",
    )
    assert result["url"].startswith("https://")
    (call,) = fake.calls("auth.test")
    assert call.path == "/api/auth.test"
    assert call.headers["Authorization"] == f"Bearer {TOKEN}"
    assert call.status == 200


def test_a_wrong_token_is_invalid_auth_and_is_recorded_redacted(fake: FakeSlack) -> None:
    bad = WebClient(token="xoxb-not-the-right-one", base_url=fake.api_url)
    with pytest.raises(SlackApiError) as raised:
        bad.auth_test()
    assert raised.value.response["error"] == "invalid_auth"
    (call,) = fake.calls()
    assert "xoxb-not-the-right-one" not in json.dumps(call.to_dict())


def test_no_token_is_not_authed(fake: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as raised:
        WebClient(base_url=fake.api_url).auth_test()
    assert raised.value.response["error"] == "not_authed"


def test_posted_messages_show_in_history_with_metadata_only_when_asked(
    fake: FakeSlack, client: WebClient
) -> None:
    first = client.chat_postMessage(channel="C1", text="first")
    second = client.chat_postMessage(
        channel="C1",
        text="digest",
        blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "*digest*"}}],
        metadata=METADATA,
    )
    client.chat_postMessage(channel="C2", text="elsewhere")
    assert first["channel"] == "C1"
    assert float(second["ts"]) > float(first["ts"])
    assert len(first["ts"].split(".")[1]) == 6

    plain = client.conversations_history(channel="C1")
    assert [m["text"] for m in plain["messages"]] == ["digest", "first"]
    assert all("metadata" not in m for m in plain["messages"])
    assert plain["messages"][0]["bot_id"] == "B0SANDBOX"
    assert plain["messages"][0]["blocks"][0]["type"] == "section"

    full = client.conversations_history(channel="C1", include_all_metadata=True)
    assert full["messages"][0]["metadata"] == METADATA
    assert "metadata" not in full["messages"][1]

    (posted,) = [c for c in fake.calls("chat.postMessage") if c.body.get("metadata")]
    assert posted.body["metadata"] == METADATA
    assert posted.headers["Content-Type"].startswith("application/json")


def test_history_honours_oldest_latest_limit_and_cursor(
    fake: FakeSlack, client: WebClient
) -> None:
    ts = [client.chat_postMessage(channel="C1", text=f"m{i}")["ts"] for i in range(5)]
    between = client.conversations_history(channel="C1", oldest=ts[1], latest=ts[4])
    assert [m["text"] for m in between["messages"]] == ["m3", "m2"]
    inclusive = client.conversations_history(
        channel="C1", oldest=ts[1], latest=ts[4], inclusive=True
    )
    assert [m["text"] for m in inclusive["messages"]] == ["m4", "m3", "m2", "m1"]

    page1 = client.conversations_history(channel="C1", limit=2)
    assert [m["text"] for m in page1["messages"]] == ["m4", "m3"]
    assert page1["has_more"] is True
    cursor = page1["response_metadata"]["next_cursor"]
    page3 = client.conversations_history(
        channel="C1", limit=2, cursor=client.conversations_history(
            channel="C1", limit=2, cursor=cursor
        )["response_metadata"]["next_cursor"]
    )
    assert [m["text"] for m in page3["messages"]] == ["m0"]
    assert page3["has_more"] is False
    with pytest.raises(SlackApiError) as raised:
        client.conversations_history(channel="C1", oldest="yesterday")
    assert raised.value.response["error"] == "invalid_ts_oldest"


def test_form_encoded_calls_are_parsed_and_json_fields_decoded(fake: FakeSlack) -> None:
    form = (
        "channel=C9&text=hello+there&blocks="
        + quote(json.dumps([{"type": "divider"}]))
        + "&metadata="
        + quote(json.dumps(METADATA))
    )
    request = urllib.request.Request(
        fake.api_url + "chat.postMessage",
        data=form.encode(),
        headers={
            "Authorization": f"Bearer {TOKEN}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert json.loads(answer.read())["ok"] is True
    (call,) = fake.calls("chat.postMessage")
    assert call.body["text"] == "hello there"
    assert call.body["blocks"] == [{"type": "divider"}]
    assert call.body["metadata"] == METADATA
    assert fake.messages("C9")[0]["metadata"] == METADATA


def test_chat_update_changes_the_stored_message(fake: FakeSlack, client: WebClient) -> None:
    posted = client.chat_postMessage(channel="C1", text="old")
    updated = client.chat_update(channel="C1", ts=posted["ts"], text="new")
    assert updated["ts"] == posted["ts"]
    assert client.conversations_history(channel="C1")["messages"][0]["text"] == "new"
    with pytest.raises(SlackApiError) as raised:
        client.chat_update(channel="C1", ts="1.000001", text="x")
    assert raised.value.response["error"] == "message_not_found"


def test_other_methods_answer_ok(fake: FakeSlack, client: WebClient) -> None:
    assert client.views_publish(user_id="U1", view={"type": "home", "blocks": []})["ok"]
    assert client.chat_postEphemeral(channel="C1", user="U1", text="psst")["ok"]
    assert client.api_call("team.info")["ok"]
    assert [c.method for c in fake.calls()] == [
        "views.publish",
        "chat.postEphemeral",
        "team.info",
    ]
    assert fake.messages("C1") == []  # ephemeral messages are not in history


def test_scripted_429_is_retried_by_the_rate_limit_handler(
    fake: FakeSlack, client: WebClient
) -> None:
    fake.script("chat.postMessage", status=429, headers={"Retry-After": "0"})
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    result = client.chat_postMessage(channel="C1", text="after the limit")
    assert result["ok"] is True
    assert [c.status for c in fake.calls("chat.postMessage")] == [429, 200]
    assert len(fake.messages("C1")) == 1


def test_scripted_429_without_a_retry_handler_raises_with_retry_after(
    fake: FakeSlack, client: WebClient
) -> None:
    fake.script("chat.postMessage", status=429)
    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel="C1", text="x")
    assert raised.value.response.status_code == 429
    assert raised.value.response["error"] == "ratelimited"
    assert raised.value.response.headers["retry-after"] in ("1", ["1"])


def test_scripts_run_in_order_and_repeat_until_cleared(
    fake: FakeSlack, client: WebClient
) -> None:
    fake.script("auth.test", body={"ok": False, "error": "account_inactive"}, times=2)
    fake.script("auth.test", status=503)
    errors = []
    for _ in range(3):
        with pytest.raises(SlackApiError) as raised:
            client.auth_test()
        errors.append(raised.value.response["error"])
    assert errors == ["account_inactive", "account_inactive", "fatal_error"]
    assert client.auth_test()["ok"] is True  # scripts used up: default behaviour again

    fake.script("auth.test", body={"ok": True, "user_id": "UFOREVER"}, times=-1)
    assert [client.auth_test()["user_id"] for _ in range(3)] == ["UFOREVER"] * 3
    fake.clear_scripts()
    assert client.auth_test()["user_id"] == "U0SANDBOXBOT"


def test_a_script_for_one_channel_leaves_the_others_alone(fake: FakeSlack, client: WebClient) -> None:
    fake.script("chat.postMessage", body={"ok": False, "error": "not_in_channel"}, channel="C2")
    assert client.chat_postMessage(channel="C1", text="first")["ok"] is True  # passes the script by
    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel="C2", text="refused")
    assert raised.value.response["error"] == "not_in_channel"
    assert client.chat_postMessage(channel="C2", text="used up")["ok"] is True
    assert [m["text"] for m in fake.messages("C2")] == ["used up"]


def test_a_delayed_answer_still_posts_and_a_timeout_is_ambiguous(fake: FakeSlack) -> None:
    # The message lands on arrival; only the answer is late: the "did it post?" case.
    impatient = WebClient(token=TOKEN, base_url=fake.api_url, timeout=1)
    impatient.retry_handlers.clear()
    fake.script("chat.postMessage", delay=3.0)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        impatient.chat_postMessage(channel="C1", text="maybe", metadata=METADATA)
    assert time.monotonic() - started < 2.5
    assert len(fake.messages("C1")) == 1


def test_a_dropped_connection_is_retried_once_by_default(
    fake: FakeSlack, client: WebClient
) -> None:
    fake.script("chat.postMessage", status=0)
    assert client.chat_postMessage(channel="C1", text="twice")["ok"] is True
    # Both attempts reached Slack: the double post docs/slack-platform.md §6.2 warns about.
    assert [c.status for c in fake.calls("chat.postMessage")] == [0, 200]
    assert [m["text"] for m in fake.messages("C1")] == ["twice", "twice"]


def test_response_url_posts_are_recorded(fake: FakeSlack) -> None:
    answer = WebhookClient(fake.response_url("x")).send(text="hello", replace_original=False)
    assert (answer.status_code, answer.body) == (200, "ok")
    WebhookClient(fake.response_url()).send(text="other")
    (got,) = fake.responses("x")
    assert got.method == "response_url" and got.path == "/response/x"
    assert got.body == {"text": "hello", "replace_original": False}
    assert len(fake.responses()) == 2
    assert fake.calls("response_url") == fake.responses()


def test_scripted_500_reaches_the_webhook_client(fake: FakeSlack) -> None:
    fake.script("response_url", status=500)
    answer = WebhookClient(fake.response_url("x")).send(text="hello")
    assert answer.status_code == 500
    assert fake.responses("x")[0].status == 500


def test_wait_for_sees_calls_from_other_threads(fake: FakeSlack, client: WebClient) -> None:
    threading.Timer(0.05, lambda: client.chat_postMessage(channel="C1", text="later")).start()
    assert fake.wait_for(lambda f: len(f.calls("chat.postMessage")) == 1, timeout=5)
    assert not fake.wait_for(lambda f: len(f.calls("chat.postMessage")) == 2, timeout=0.1)


def test_calls_are_served_for_other_processes_and_can_be_cleared(
    fake: FakeSlack, client: WebClient
) -> None:
    client.auth_test()
    client.chat_postMessage(channel="C1", text="x")
    url = fake.base_url + "/_fake/calls"
    with urllib.request.urlopen(url, timeout=5) as answer:
        calls = [Recorded(**c) for c in json.loads(answer.read())["calls"]]
    assert [c.method for c in calls] == ["auth.test", "chat.postMessage"]
    with urllib.request.urlopen(url + "?method=auth.test", timeout=5) as answer:
        assert len(json.loads(answer.read())["calls"]) == 1
    urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=5).close()
    assert fake.calls() == []


def test_reset_forgets_everything(fake: FakeSlack, client: WebClient) -> None:
    client.chat_postMessage(channel="C1", text="x")
    fake.script("auth.test", status=500, times=-1)
    fake.reset()
    assert fake.calls() == [] and fake.messages("C1") == []
    assert client.auth_test()["ok"] is True


@pytest.mark.e2e
def test_stop_returns_promptly_even_with_an_answer_in_flight() -> None:
    fake = FakeSlack().start()
    fake.script("auth.test", delay=30)
    slow = WebClient(token="xoxb-sandbox-token", base_url=fake.api_url, timeout=10)
    slow.retry_handlers.clear()
    outcome: list[object] = []

    def call() -> None:
        try:
            slow.auth_test()
        except Exception as exc:
            outcome.append(exc)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    assert fake.wait_for(lambda f: len(f.calls()) == 1, timeout=5)
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 1.0
    worker.join(timeout=5)
    assert outcome  # the client saw the connection close, not a 30 s wait


@pytest.mark.e2e
def test_ts_comes_from_the_injected_clock() -> None:
    with FakeSlack(clock=lambda: 1_700_000_000.0) as fixed:
        fixed_client = WebClient(token="xoxb-sandbox-token", base_url=fixed.api_url)
        stamps = [fixed_client.chat_postMessage(channel="C", text="t")["ts"] for _ in range(3)]
    assert stamps == ["1700000000.000000", "1700000000.000001", "1700000000.000002"]


def test_a_bolt_app_runs_end_to_end_against_the_fake(fake: FakeSlack) -> None:
    # The docs/slack-platform.md §13 pattern the Slack app's tests build on: auth.test at construction, a really
    # signed slash command, respond() landing in the catcher, 401 on a bad signature.
    from slack_bolt import App, BoltRequest

    app = App(
        client=WebClient(token=TOKEN, base_url=fake.api_url),
        signing_secret=SECRET,
        process_before_response=True,
    )

    @app.command("/desk-languages")
    def languages(ack, respond, command):  # type: ignore[no-untyped-def]
        ack()
        respond(text=f"you asked: {command['text']}", replace_original=False)

    body = slash_command_body("list", response_url=fake.response_url("cmd"))
    # BoltRequest wants dict[str, str | Sequence[str]]; dict is invariant, so copy.
    signed: dict[str, str | Sequence[str]] = {**sign(SECRET, body)}
    answer = app.dispatch(BoltRequest(body=body, headers=signed))
    assert answer.status == 200
    assert fake.wait_for(lambda f: len(f.responses("cmd")) == 1)
    assert fake.responses("cmd")[0].body["text"] == "you asked: list"
    assert len(fake.calls("auth.test")) == 1

    forged_headers: dict[str, str | Sequence[str]] = {**sign("not-the-secret", body)}
    forged = app.dispatch(BoltRequest(body=body, headers=forged_headers))
    assert forged.status == 401
    assert len(fake.responses("cmd")) == 1


# -- signing ---------------------------------------------------------------------------------


def test_sign_verifies_and_fails_with_another_secret_or_a_stale_timestamp() -> None:
    body = slash_command_body("list", response_url="http://127.0.0.1:9/response/x")
    headers = sign(SECRET, body)
    ts, sig = headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert sig.startswith("v0=")
    assert SignatureVerifier(SECRET).is_valid(body, ts, sig)
    assert not SignatureVerifier("another-secret").is_valid(body, ts, sig)
    assert not SignatureVerifier(SECRET).is_valid(body + "x", ts, sig)

    stale = sign(SECRET, body, timestamp=int(time.time()) - 301)
    assert not SignatureVerifier(SECRET).is_valid(
        body, stale["X-Slack-Request-Timestamp"], stale["X-Slack-Signature"]
    )


def test_slash_command_body_has_every_field_slack_sends() -> None:
    body = slash_command_body(
        "default fr", response_url="http://127.0.0.1:9/response/r1", trigger_id="1.2.abc"
    )
    fields = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
    assert fields["command"] == "/desk-languages"
    assert fields["text"] == "default fr"
    assert fields["response_url"] == "http://127.0.0.1:9/response/r1"
    assert fields["trigger_id"] == "1.2.abc"
    assert set(fields) >= {
        "token", "team_id", "team_domain", "channel_id", "channel_name", "user_id",
        "user_name", "command", "text", "api_app_id", "is_enterprise_install",
        "response_url", "trigger_id",
    }  # fmt: skip
    empty = parse_qs(slash_command_body("", response_url="u"), keep_blank_values=True)
    assert empty["text"] == [""]
    assert empty["trigger_id"][0].count(".") == 2


def test_block_action_body_is_a_block_actions_payload() -> None:
    message = {
        "ts": "1700000000.000100",
        "text": "langs",
        "blocks": [
            {
                "type": "actions",
                "block_id": "langs-actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "refresh",
                        "text": {"type": "plain_text", "text": "Refresh"},
                    }
                ],
            }
        ],
    }
    body = block_action_body("refresh", response_url="http://r", value="v1", message=message)
    (raw,) = parse_qs(body)["payload"]
    payload = json.loads(raw)
    assert payload["type"] == "block_actions"
    (action,) = payload["actions"]
    assert (action["action_id"], action["block_id"], action["value"]) == (
        "refresh",
        "langs-actions",
        "v1",
    )
    assert action["text"]["text"] == "Refresh"
    assert payload["container"]["message_ts"] == "1700000000.000100"
    assert payload["container"]["is_ephemeral"] is False
    assert payload["message"] == message
    assert payload["response_url"] == "http://r"
    assert payload["user"]["id"] == "U0SANDBOXUSER" and payload["team"]["id"] == "T0SANDBOX"
    assert payload["channel"]["id"] == "C0SANDBOX"

    ephemeral = json.loads(parse_qs(block_action_body("x", response_url="u"))["payload"][0])
    assert "message" not in ephemeral and ephemeral["container"]["is_ephemeral"] is True
