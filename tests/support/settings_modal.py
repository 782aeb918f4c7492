"""Driving the settings modal from tests: the command that opens it, the view on top of a user's
modal stack once it shows, a signed submission whose answer FakeSlack applies, and Desk's writes."""

from __future__ import annotations

from typing import Any

from bot.sandbox.desk_emulator import DeskEmulator
from bot.sandbox.slack_emulator import SANDBOX_USER_ID, FakeSlack, slash_command_body
from tests.support.slack_harness import BotUnderTest, Reply

ADMIN = SANDBOX_USER_ID
SOON = 10.0


def settings_command(bot: BotUnderTest, text: str, user: str = ADMIN) -> Reply:
    name = bot.new_name("settings")
    body = slash_command_body(
        text, response_url=bot.slack.response_url(name), user_id=user, trigger_id=bot.slack.trigger_id(user)
    )
    reply = bot.send(body, name)
    assert reply.status == 200 and reply.ack is None and reply.elapsed < 3.0
    return reply


def top(bot: BotUnderTest, callback: str | None = None, user: str = ADMIN) -> dict[str, Any]:
    """The view on top of `user`'s modal once it has `callback` (the form, the review), else fail."""
    def shown(fake: FakeSlack) -> bool:
        stack = fake.modal_stack(user)
        return bool(stack) and (callback is None or stack[-1].get("callback_id") == callback)

    assert bot.slack.wait_for(shown, timeout=SOON), f"no {callback} view: {bot.slack.modal_stack(user)}"
    return bot.slack.modal_stack(user)[-1]


def settled(bot: BotUnderTest, predicate: Any, user: str = ADMIN) -> dict[str, Any]:
    assert bot.slack.wait_for(lambda fake: bool(fake.modal_stack(user)) and predicate(fake.modal_stack(user)[-1]),
                              timeout=SOON), bot.slack.modal_stack(user)
    return bot.slack.modal_stack(user)[-1]


def submit(bot: BotUnderTest, view: dict[str, Any], entered: dict[str, Any] | None = None,
           user: str = ADMIN) -> dict[str, Any]:
    """Submit `view` signed; Slack applies the ack's answer to the modal. The answer."""
    reply = bot.submit(view, entered, user=user)
    assert reply.status == 200 and reply.elapsed < 3.0
    answer = reply.ack
    bot.slack.answer_submission(view["id"], answer)
    return answer or {}


def update_writes(desk: DeskEmulator) -> list[Any]:
    return [call for call in desk.calls if call.api == "update_robot_config"]
