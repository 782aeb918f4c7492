"""Modals in the fake Slack, held to Slack's rules (docs/slack-platform.md §16).

Fast: the modal state (`ModalViews`) driven in-process with a settable clock, and the payload
builders. End-to-end: the same methods called by slack_sdk's WebClient over loopback, and a
small Bolt app that opens a modal from a signed command, updates it from a click inside it and
answers signed submissions with `response_action`. Slack's limits are written out as numbers,
not taken from the fake, so that a wrong limit in the fake fails here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import parse_qs

import pytest
from slack_bolt import App, BoltRequest, BoltResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier

from bot.sandbox.slack_emulator import (
    SANDBOX_USER_ID,
    FakeSlack,
    block_action_body,
    block_action_payload,
    sign,
    slash_command_body,
    view_submission_body,
    view_submission_payload,
)
from bot.sandbox.slack_views import ModalViews, state_values
from tests.support.clocks import Dial
from tests.support.tiers import e2e_fixture

TOKEN = "xoxb-views-token-not-real"
SECRET = "views-signing-secret-not-real"
USER = SANDBOX_USER_ID
OTHER = "U0OTHERUSER"
START = 1_750_000_000.0


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def option(value: str) -> dict[str, Any]:
    return {"text": plain(value.title()), "value": value}


def modal(heading: str = "Settings", **fields: Any) -> dict[str, Any]:
    """A modal with one of each input the fake fills, and a button inside it."""
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": "settings",
        "title": plain(heading),
        "submit": plain("Review"),
        "close": plain("Cancel"),
        "private_metadata": json.dumps({"app": "prod", "tag": "fil"}),
        "blocks": [
            {
                "type": "input",
                "block_id": "fallback",
                "label": plain("Fallback message"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": "text",
                    "multiline": True,
                    "initial_value": "Sorry?",
                },
            },
            {
                "type": "input",
                "block_id": "card",
                "label": plain("Welcome card"),
                "element": {
                    "type": "static_select",
                    "action_id": "choice",
                    "options": [option("on"), option("off")],
                    "initial_option": option("off"),
                },
            },
            {
                "type": "input",
                "block_id": "extras",
                "label": plain("Extras"),
                "element": {"type": "checkboxes", "action_id": "picked", "options": [option("a"), option("b")]},
            },
            {
                "type": "input",
                "block_id": "transfer",
                "label": plain("Transfer"),
                "element": {"type": "radio_buttons", "action_id": "mode", "options": [option("yes"), option("no")]},
            },
            {
                "type": "actions",
                "block_id": "more",
                "elements": [{"type": "button", "action_id": "reload", "text": plain("Reload")}],
            },
        ],
    }
    view.update(fields)
    return view


@pytest.fixture
def clock() -> Dial[float]:
    return Dial(START)


@pytest.fixture
def views(clock: Dial[float]) -> ModalViews:
    return ModalViews(clock=clock, team_id="T0SANDBOX", app_id="A0SANDBOX", bot_id="B0SANDBOX")


def opened(views: ModalViews, view: dict[str, Any] | None = None, user: str = USER) -> dict[str, Any]:
    answer = views.open({"trigger_id": views.mint_trigger(user), "view": view or modal()})
    assert answer["ok"], answer
    return dict(answer["view"])


# -- views.open and views.update ---------------------------------------------------------------


def test_open_returns_the_view_as_slack_does_then_update_gives_a_new_hash(views: ModalViews) -> None:
    view = opened(views)
    assert view["id"].startswith("V")
    assert view["type"] == "modal"
    assert view["callback_id"] == "settings"
    assert json.loads(view["private_metadata"]) == {"app": "prod", "tag": "fil"}
    assert view["state"] == {"values": {}}
    assert view["hash"] and view["root_view_id"] == view["id"] and view["previous_view_id"] is None
    assert views.stack(USER) == [view]

    answer = views.update({"view_id": view["id"], "hash": view["hash"], "view": modal("Filipino")})
    assert answer["ok"], answer
    updated = answer["view"]
    assert updated["id"] == view["id"] and updated["title"]["text"] == "Filipino"
    assert updated["hash"] != view["hash"]
    assert views.view(view["id"]) == updated
    assert views.stack(USER) == [updated]


def test_update_without_a_hash_always_applies_and_by_external_id(views: ModalViews) -> None:
    view = opened(views, modal(external_id="settings-prod-fil"))
    answer = views.update(
        {"external_id": "settings-prod-fil", "view": modal("Loaded", external_id="settings-prod-fil")}
    )
    assert answer["ok"] and answer["view"]["id"] == view["id"]
    assert views.update({"view_id": view["id"], "view": modal("Again")})["ok"]


def test_a_hash_that_is_not_the_current_one_is_a_hash_conflict(views: ModalViews) -> None:
    view = opened(views)
    assert views.update({"view_id": view["id"], "hash": view["hash"], "view": modal("First")})["ok"]
    stale = views.update({"view_id": view["id"], "hash": view["hash"], "view": modal("Second")})
    assert stale == {"ok": False, "error": "hash_conflict"}
    assert views.stack(USER)[0]["title"]["text"] == "First"


def test_update_of_a_view_not_open_is_not_found_and_needs_one_identifier(views: ModalViews) -> None:
    assert views.update({"view_id": "V0NOPE", "view": modal()}) == {"ok": False, "error": "not_found"}
    both = views.update({"view_id": "V0NOPE", "external_id": "x", "view": modal()})
    assert both["error"] == "invalid_arguments"
    assert views.update({"view": modal()})["error"] == "invalid_arguments"


def test_another_open_replaces_the_users_modal_and_users_have_their_own(views: ModalViews) -> None:
    first = opened(views)
    theirs = opened(views, user=OTHER)
    second = opened(views, modal("Second"))
    assert [v["id"] for v in views.stack(USER)] == [second["id"]]
    assert views.view(first["id"]) is None
    assert [v["id"] for v in views.stack(OTHER)] == [theirs["id"]]


# -- trigger_ids -------------------------------------------------------------------------------


def test_a_trigger_id_works_once(views: ModalViews) -> None:
    trigger = views.mint_trigger(USER)
    assert views.open({"trigger_id": trigger, "view": modal()})["ok"]
    assert views.open({"trigger_id": trigger, "view": modal()}) == {"ok": False, "error": "exchanged_trigger_id"}


def test_a_trigger_id_expires_three_seconds_after_issue(views: ModalViews, clock: Dial[float]) -> None:
    in_time, late = views.mint_trigger(USER), views.mint_trigger(USER)
    clock.value = START + 3.0
    assert views.open({"trigger_id": in_time, "view": modal()})["ok"]
    clock.value = START + 3.0 + 0.001
    assert views.open({"trigger_id": late, "view": modal()}) == {"ok": False, "error": "expired_trigger_id"}


def test_an_unknown_or_missing_trigger_id_is_refused(views: ModalViews) -> None:
    unknown = views.open({"trigger_id": "1.2.abc", "view": modal()})
    assert unknown == {"ok": False, "error": "invalid_trigger_id"}
    missing = views.open({"view": modal()})
    assert missing["error"] == "invalid_arguments"
    assert views.stack(USER) == []


def test_a_refused_view_does_not_spend_the_trigger(views: ModalViews) -> None:
    trigger = views.mint_trigger(USER)
    assert views.open({"trigger_id": trigger, "view": modal("x" * 25)})["error"] == "invalid_arguments"
    assert views.open({"trigger_id": trigger, "view": modal()})["ok"]


# -- views.push --------------------------------------------------------------------------------


def test_push_stacks_at_most_three_views(views: ModalViews) -> None:
    root = opened(views)
    second = views.push({"trigger_id": views.mint_trigger(USER), "view": modal("Second")})["view"]
    assert second["root_view_id"] == root["id"] and second["previous_view_id"] == root["id"]
    third = views.push({"trigger_id": views.mint_trigger(USER), "view": modal("Third")})["view"]
    assert third["previous_view_id"] == second["id"]
    fourth = views.push({"trigger_id": views.mint_trigger(USER), "view": modal("Fourth")})
    assert fourth == {"ok": False, "error": "push_limit_reached"}
    assert [v["title"]["text"] for v in views.stack(USER)] == ["Settings", "Second", "Third"]


def test_push_needs_a_trigger_and_an_open_modal_of_that_user(views: ModalViews) -> None:
    opened(views, user=OTHER)
    nothing_open = views.push({"trigger_id": views.mint_trigger(USER), "view": modal()})
    assert nothing_open["error"] == "invalid_arguments"
    assert views.push({"view": modal()})["error"] == "invalid_arguments"
    trigger = views.mint_trigger(OTHER)
    assert views.push({"trigger_id": trigger, "view": modal()})["ok"]
    assert views.push({"trigger_id": trigger, "view": modal()}) == {"ok": False, "error": "exchanged_trigger_id"}


# -- validation ----------------------------------------------------------------------------------


def many_blocks(n: int) -> list[dict[str, Any]]:
    return [{"type": "section", "text": plain(str(i))} for i in range(n)]


ACCEPTED = {
    "title of 24 characters": {"title": plain("t" * 24)},
    "submit of 24 characters": {"submit": plain("s" * 24)},
    "close of 24 characters": {"close": plain("c" * 24)},
    "100 blocks": {"blocks": many_blocks(100), "submit": None},
    "private_metadata of 3000": {"private_metadata": "m" * 3000},
    "callback_id of 255": {"callback_id": "c" * 255},
    "no submit without inputs": {"blocks": many_blocks(1), "submit": None},
}
REFUSED = {
    "not a modal": ({"type": "home"}, "/view/type"),
    "no title": ({"title": None}, "title"),
    "title of 25": ({"title": plain("t" * 25)}, "/view/title/text"),
    "submit of 25": ({"submit": plain("s" * 25)}, "/view/submit/text"),
    "close of 25": ({"close": plain("c" * 25)}, "/view/close/text"),
    "title in mrkdwn": ({"title": {"type": "mrkdwn", "text": "Settings"}}, "/view/title/type"),
    "101 blocks": ({"blocks": many_blocks(101), "submit": None}, "/view/blocks"),
    "private_metadata of 3001": ({"private_metadata": "m" * 3001}, "/view/private_metadata"),
    "callback_id of 256": ({"callback_id": "c" * 256}, "/view/callback_id"),
    "inputs without submit": ({"submit": None}, "/view/submit"),
}


def without_nones(view: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in view.items() if value is not None}


@pytest.mark.parametrize("fields", ACCEPTED.values(), ids=list(ACCEPTED))
def test_views_at_the_limits_are_accepted(views: ModalViews, fields: dict[str, Any]) -> None:
    view = without_nones(modal(**fields))
    assert views.open({"trigger_id": views.mint_trigger(USER), "view": view})["ok"]


@pytest.mark.parametrize(("fields", "pointer"), REFUSED.values(), ids=list(REFUSED))
def test_each_rule_refuses_with_invalid_arguments_and_a_message(
    views: ModalViews, fields: dict[str, Any], pointer: str
) -> None:
    view = without_nones(modal(**fields))
    for answer in (
        views.open({"trigger_id": views.mint_trigger(USER), "view": view}),
        views.update({"view_id": opened(views)["id"], "view": view}),
        views.push({"trigger_id": views.mint_trigger(USER), "view": view}),
    ):
        assert answer["ok"] is False and answer["error"] == "invalid_arguments"
        (message,) = answer["response_metadata"]["messages"]
        assert message.startswith("[ERROR]") and pointer in message


def test_a_view_over_250_kb_is_too_large(views: ModalViews) -> None:
    big = modal(blocks=[{"type": "section", "text": plain("x" * 2600)} for _ in range(100)], submit=None)
    assert views.open({"trigger_id": views.mint_trigger(USER), "view": big}) == {"ok": False, "error": "view_too_large"}


def test_a_missing_view_is_invalid_arguments(views: ModalViews) -> None:
    answer = views.open({"trigger_id": views.mint_trigger(USER)})
    assert answer["response_metadata"]["messages"] == ["[ERROR] missing required field: view"]


# -- view.state.values and the payloads ---------------------------------------------------------


def test_state_values_are_shaped_like_slacks_with_initial_values_kept() -> None:
    view = modal()
    untouched = state_values(view)
    assert untouched == {
        "fallback": {"text": {"type": "plain_text_input", "value": "Sorry?"}},
        "card": {"choice": {"type": "static_select", "selected_option": option("off")}},
        "extras": {"picked": {"type": "checkboxes", "selected_options": []}},
        "transfer": {"mode": {"type": "radio_buttons", "selected_option": None}},
    }
    entered = state_values(view, {"fallback": "", "card": "on", "extras": ["b", "a"], "transfer": "no"})
    assert entered["fallback"]["text"]["value"] is None  # Slack sends null for an emptied input
    assert entered["card"]["choice"]["selected_option"] == option("on")
    assert entered["extras"]["picked"]["selected_options"] == [option("b"), option("a")]
    assert entered["transfer"]["mode"]["selected_option"] == option("no")


def test_state_values_refuse_what_the_view_does_not_have() -> None:
    with pytest.raises(ValueError, match="no input block"):
        state_values(modal(), {"nope": "x"})
    with pytest.raises(ValueError, match="no option"):
        state_values(modal(), {"card": "maybe"})


def test_a_submission_payload_carries_the_view_its_state_and_the_user(views: ModalViews) -> None:
    view = opened(views)
    payload = view_submission_payload(view, {"fallback": "Pardon?"}, user_id=OTHER, trigger_id="1.2.abc")
    assert payload["type"] == "view_submission"
    assert payload["user"]["id"] == OTHER and payload["trigger_id"] == "1.2.abc"
    submitted = payload["view"]
    assert submitted["id"] == view["id"] and submitted["hash"] == view["hash"]
    assert submitted["callback_id"] == "settings" and submitted["private_metadata"] == view["private_metadata"]
    assert submitted["state"]["values"]["fallback"]["text"]["value"] == "Pardon?"
    body = view_submission_body(view, {"fallback": "Pardon?"})
    assert json.loads(parse_qs(body)["payload"][0])["view"]["state"] == submitted["state"]


def test_a_click_inside_a_modal_has_the_view_as_container(views: ModalViews) -> None:
    view = opened(views)
    payload = block_action_payload("reload", view=view, entered={"card": "on"}, trigger_id="1.2.abc")
    assert payload["container"] == {"type": "view", "view_id": view["id"]}
    assert payload["view"]["id"] == view["id"]
    assert payload["view"]["state"]["values"]["card"]["choice"]["selected_option"] == option("on")
    assert payload["actions"][0]["block_id"] == "more"
    assert "response_url" not in payload and "channel" not in payload
    message_click = block_action_payload("reload", response_url="http://r")
    assert message_click["container"]["type"] == "message" and message_click["response_url"] == "http://r"


# -- what a submission's answer does ----------------------------------------------------------


def test_errors_keep_the_view_and_show_under_the_inputs(views: ModalViews) -> None:
    view = opened(views)
    outcome = views.answer_submission(view["id"], {"response_action": "errors", "errors": {"fallback": "Too long"}})
    assert outcome.action == "errors" and outcome.errors == {"fallback": "Too long"} and not outcome.problems
    assert outcome.view == view
    wrong = views.answer_submission(view["id"], {"response_action": "errors", "errors": {"more": "x"}})
    assert wrong.problems  # an error under a block that is not an input: Slack refuses the answer


def test_update_replaces_the_submitted_view_and_is_validated(views: ModalViews) -> None:
    view = opened(views)
    outcome = views.answer_submission(view["id"], {"response_action": "update", "view": modal("Review")})
    assert outcome.action == "update" and not outcome.problems
    assert outcome.view is not None and outcome.view["id"] == view["id"] and outcome.view["hash"] != view["hash"]
    assert views.stack(USER)[0]["title"]["text"] == "Review"
    refused = views.answer_submission(view["id"], {"response_action": "update", "view": modal("x" * 25)})
    assert refused.problems and views.stack(USER)[0]["title"]["text"] == "Review"


def test_push_empty_and_clear_answers_move_the_stack(views: ModalViews) -> None:
    root = opened(views)
    pushed = views.answer_submission(root["id"], {"response_action": "push", "view": modal("Review")})
    assert pushed.view is not None and [v["id"] for v in views.stack(USER)] == [root["id"], pushed.view["id"]]
    closed = views.answer_submission(pushed.view["id"], None)
    assert closed.view == views.view(root["id"]) and len(views.stack(USER)) == 1
    views.answer_submission(root["id"], {"response_action": "push", "view": modal("Again")})
    cleared = views.answer_submission(root["id"], {"response_action": "clear"})
    assert cleared.view is None and views.stack(USER) == []


# -- over loopback: slack_sdk's WebClient, and a Bolt app ---------------------------------------


@e2e_fixture
def fake(clock: Dial[float]) -> Iterator[FakeSlack]:
    with FakeSlack(token=TOKEN, clock=clock) as running:
        yield running


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    return WebClient(token=TOKEN, base_url=fake.api_url, timeout=5)


def api_error(call: Any) -> dict[str, Any]:
    with pytest.raises(SlackApiError) as raised:
        call()
    return dict(raised.value.response.data)  # type: ignore[arg-type]


def test_the_web_client_opens_updates_and_pushes_with_slacks_errors(
    fake: FakeSlack, client: WebClient, clock: Dial[float]
) -> None:
    trigger = fake.trigger_id()
    view = client.views_open(trigger_id=trigger, view=modal())["view"]
    assert fake.modal_stack() == [view]
    assert api_error(lambda: client.views_open(trigger_id=trigger, view=modal()))["error"] == "exchanged_trigger_id"
    assert api_error(lambda: client.views_open(trigger_id="1.2.abc", view=modal()))["error"] == "invalid_trigger_id"
    late = fake.trigger_id()
    clock.value = START + 3.0 + 1
    assert api_error(lambda: client.views_open(trigger_id=late, view=modal()))["error"] == "expired_trigger_id"

    updated = client.views_update(view_id=view["id"], hash=view["hash"], view=modal("Loaded"))["view"]
    stale = api_error(lambda: client.views_update(view_id=view["id"], hash=view["hash"], view=modal("Stale")))
    assert stale["error"] == "hash_conflict"
    invalid = api_error(lambda: client.views_update(view_id=view["id"], view=modal("x" * 25)))
    assert invalid["error"] == "invalid_arguments" and invalid["response_metadata"]["messages"]
    for title in ("Second", "Third"):
        client.views_push(trigger_id=fake.trigger_id(), view=modal(title))
    over = api_error(lambda: client.views_push(trigger_id=fake.trigger_id(), view=modal("Fourth")))
    assert over["error"] == "push_limit_reached"
    assert [v["title"]["text"] for v in fake.modal_stack()] == ["Loaded", "Second", "Third"]
    assert fake.view(view["id"]) == updated
    assert [c.status for c in fake.calls("views.open")] == [200] * 4  # recorded like every call
    assert len(fake.calls("views.update")) == 3 and len(fake.calls("views.push")) == 3


def test_form_encoded_calls_and_a_wrong_token_behave_as_slack(fake: FakeSlack) -> None:
    form = WebClient(token=TOKEN, base_url=fake.api_url)
    opened_view = form.api_call("views.open", data={"trigger_id": fake.trigger_id(), "view": json.dumps(modal())})[
        "view"
    ]
    assert opened_view["callback_id"] == "settings"
    wrong = WebClient(token="xoxb-wrong", base_url=fake.api_url)
    assert api_error(lambda: wrong.views_open(trigger_id=fake.trigger_id(), view=modal()))["error"] == "invalid_auth"


def bolt_app(fake: FakeSlack) -> tuple[App, list[dict[str, Any]]]:
    """A small Bolt app over the fake: the command opens the modal, a click in it updates it,
    and submissions are answered by what their fallback text asks for."""
    app = App(client=WebClient(token=TOKEN, base_url=fake.api_url), signing_secret=SECRET, process_before_response=True)
    seen: list[dict[str, Any]] = []

    @app.command("/desk-languages")
    def command(ack, body, client):  # type: ignore[no-untyped-def]
        ack()
        client.views_open(trigger_id=body["trigger_id"], view=modal("Loading"))

    @app.action("reload")
    def reload(ack, body, client):  # type: ignore[no-untyped-def]
        ack()
        client.views_update(view_id=body["view"]["id"], hash=body["view"]["hash"], view=modal("Reloaded"))

    @app.view("settings")
    def submitted(ack, body, view):  # type: ignore[no-untyped-def]
        seen.append(body)
        text = view["state"]["values"]["fallback"]["text"]["value"] or ""
        if text == "errors":
            ack(response_action="errors", errors={"fallback": "Say more"})
        elif text == "review":
            ack(response_action="update", view=modal("Review", callback_id="review"))
        else:
            ack()

    @app.view("review")
    def reviewed(ack):  # type: ignore[no-untyped-def]
        ack()

    return app, seen


def dispatch(app: App, body: str, secret: str = SECRET) -> BoltResponse:
    headers: dict[str, str | Sequence[str]] = {**sign(secret, body)}
    return app.dispatch(BoltRequest(body=body, headers=headers))


def test_a_bolt_app_opens_updates_and_is_answered_through_the_fake(fake: FakeSlack) -> None:
    app, seen = bolt_app(fake)
    command = slash_command_body("settings fil", response_url=fake.response_url("cmd"), trigger_id=fake.trigger_id())
    assert dispatch(app, command).status == 200
    (view,) = fake.modal_stack()
    assert view["title"]["text"] == "Loading"

    click = block_action_body("reload", view=view, trigger_id=fake.trigger_id())
    assert dispatch(app, click).status == 200
    (view,) = fake.modal_stack()
    assert view["title"]["text"] == "Reloaded"

    errors = dispatch(app, view_submission_body(view, {"fallback": "errors"}, trigger_id=fake.trigger_id()))
    assert errors.status == 200
    answer = json.loads(errors.body)
    assert answer == {"response_action": "errors", "errors": {"fallback": "Say more"}}
    shown = fake.answer_submission(view["id"], answer)
    assert shown.errors == {"fallback": "Say more"} and not shown.problems
    assert seen[-1]["view"]["state"]["values"]["fallback"]["text"]["value"] == "errors"
    assert seen[-1]["user"]["id"] == USER

    review = dispatch(app, view_submission_body(view, {"fallback": "review"}, trigger_id=fake.trigger_id()))
    answer = json.loads(review.body)
    assert answer["response_action"] == "update" and answer["view"]["title"]["text"] == "Review"
    shown = fake.answer_submission(view["id"], answer)
    assert not shown.problems and [v["title"]["text"] for v in fake.modal_stack()] == ["Review"]

    done = dispatch(app, view_submission_body(fake.modal_stack()[0], trigger_id=fake.trigger_id()))
    assert done.status == 200 and not done.body
    assert fake.answer_submission(fake.modal_stack()[0]["id"], None).view is None
    assert fake.modal_stack() == []


def test_submission_bodies_pass_signature_verification_and_a_forged_one_does_not(fake: FakeSlack) -> None:
    app, seen = bolt_app(fake)
    body = view_submission_body({**modal(), "id": "V0ANY", "hash": "1.a"}, {"fallback": "fine"})
    headers = sign(SECRET, body)
    assert SignatureVerifier(SECRET).is_valid(body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"])
    assert dispatch(app, body).status == 200 and len(seen) == 1
    assert dispatch(app, body, secret="not-the-secret").status == 401
    assert len(seen) == 1
