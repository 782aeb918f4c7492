"""The modal that changes one language's chatbot settings, as Block Kit views: loading, the form,
the review, and every answer after (an error, the result).

Pure functions from data to views, built with slack_sdk's models and `bot.slack.blocks`' text
helpers (the same escaping and limits as every message). Desk's values are data: they fill
plain-text inputs as they are, and are escaped wherever mrkdwn shows them.

`private_metadata` carries only what is shown: the app, the tag, the request that holds what
was read, and a digest of each field read (so a submission can tell what changed without I/O).
It never carries a decision about who may act: every step checks the payload's user again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    InputBlock,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    RadioButtonsElement,
)
from slack_sdk.models.views import View

from bot.desk.models import language_name
from bot.desk.readiness import RobotSettings
from bot.management.settings_form import (
    AGENT_BLOCK,
    CARD_BLOCK,
    FALLBACK_BLOCK,
    INPUT_ACTION,
    LABELS,
    OFF,
    ON,
    QUESTIONS_BLOCK,
    TITLE_BLOCK,
    EditableSettings,
    change_lines,
)
from bot.slack.blocks import RenderContext, clean_text, code_text, context, escape, fit, section

FORM_CALLBACK = "desk_settings_form"
REVIEW_CALLBACK = "desk_settings_review"
NOTICE_CALLBACK = "desk_settings_notice"
BACK_ACTION = "desk_settings_back"
TITLE = "Chatbot settings"  # a modal's title: at most 24 characters
SHOWN_LIMIT = 900  # characters of one value shown in the review (each side of the arrow)


@dataclass(frozen=True)
class ModalMetadata:
    """What a settings modal carries in `private_metadata` (see the module docstring)."""

    app: str
    tag: str
    change: str  # the request's id (bot/management/store.py)
    read: Mapping[str, str]  # field -> digest of the value read (the form only)

    def to_json(self) -> str:
        data: dict[str, Any] = {"app": self.app, "tag": self.tag, "change": self.change}
        if self.read:
            data["read"] = dict(self.read)
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def parse(cls, text: Any) -> ModalMetadata | None:
        """The metadata of a submitted view; None when it is not one of ours (or was tampered with)."""
        try:
            data = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        app, tag, change, read = data.get("app"), data.get("tag"), data.get("change"), data.get("read", {})
        if not (isinstance(app, str) and isinstance(tag, str) and isinstance(change, str) and isinstance(read, dict)):
            return None
        return cls(app[:64], tag[:64], change[:32], {str(k): str(v) for k, v in read.items()})


def language_title(tag: str) -> str:
    return f"{escape(language_name(tag))} ({code_text(tag)})" if tag else escape(language_name(tag))


def _where(ctx: RenderContext) -> str:
    """The app: its label and SDKAppID, or the SDKAppID alone (not twice) when it has no label."""
    if not ctx.label:
        return f"*SDKAppID {ctx.sdkappid}*"
    return f"*{clean_text(ctx.label, 80)}* (SDKAppID {ctx.sdkappid})"


def _view(blocks: list[dict[str, Any]], *, callback_id: str, metadata: str = "", submit: str | None = None,
          close: str = "Close") -> dict[str, Any]:
    view = View(
        type="modal",
        callback_id=callback_id,
        title=PlainTextObject(text=TITLE),
        close=PlainTextObject(text=close),
        submit=PlainTextObject(text=submit) if submit else None,
        private_metadata=metadata or None,
        blocks=blocks,
    )
    return view.to_dict()


def loading_view(ctx: RenderContext, tag: str) -> dict[str, Any]:
    """Opened at once, while Desk is asked (a trigger_id lives about 3 s; Desk may take longer)."""
    return _view(
        [section(f":hourglass_flowing_sand: Reading the chatbot settings of {language_title(tag)} in {_where(ctx)} "
                 "from Desk…")],
        callback_id=NOTICE_CALLBACK,
    )


def notice_view(text: str) -> dict[str, Any]:
    """An answer that ends the modal: an error with what to do, or the result. `text` is mrkdwn the
    bot composed (outside parts escaped already)."""
    return _view([section(fit(text))], callback_id=NOTICE_CALLBACK)


def _switch(block_id: str, label: str, value: bool, on: str, off: str) -> dict[str, Any]:
    options = [Option(value=ON, text=PlainTextObject(text=on)), Option(value=OFF, text=PlainTextObject(text=off))]
    element = RadioButtonsElement(action_id=INPUT_ACTION, options=options, initial_option=options[0 if value else 1])
    return InputBlock(block_id=block_id, label=PlainTextObject(text=label), element=element).to_dict()


def _text_input(block_id: str, label: str, value: str, *, multiline: bool, hint: str) -> dict[str, Any]:
    element = PlainTextInputElement(action_id=INPUT_ACTION, multiline=multiline, initial_value=value or None)
    return InputBlock(
        block_id=block_id, label=PlainTextObject(text=label), element=element, optional=True,
        hint=PlainTextObject(text=hint),
    ).to_dict()


def thresholds_text(settings: RobotSettings) -> str:
    """The settings the modal shows and keeps as they are (read-only)."""
    def value(text: Any) -> str:
        return code_text(str(text), 20) if text not in (None, "") else "not set"

    def flag(on: bool | None) -> str:
        return "not set" if on is None else (ON if on else OFF)

    return (
        f"Kept as they are: direct answer from {value(settings.direct_answering_reaches)}, "
        f"chitchat {flag(settings.chitchat_enabled)} (from {value(settings.chitchat_reaches)}), "
        f"clarify {flag(settings.clarify_enabled)} (from {value(settings.clarify_reaches)}). "
        "Change them in the Tencent console."
    )


def form_view(
    ctx: RenderContext, metadata: ModalMetadata, settings: RobotSettings, shown: EditableSettings | None = None
) -> dict[str, Any]:
    """The form, filled with `shown` (what the person entered, after Back) or Desk's values."""
    values = shown or EditableSettings.of(settings)
    blocks = [
        section(f"{language_title(metadata.tag)} in {_where(ctx)}. Saving shows a review first; "
                "nothing changes before Apply."),
        _text_input(FALLBACK_BLOCK, "Fallback message", values.fallback_message, multiline=True,
                    hint="What the chatbot says when it has no answer."),
        _switch(CARD_BLOCK, "Welcome card", values.welcome_card_enabled, "On", "Off"),
        _text_input(TITLE_BLOCK, "Welcome card title", values.welcome_card_title, multiline=False,
                    hint="One line."),
        _text_input(QUESTIONS_BLOCK, "Welcome card questions", "\n".join(values.welcome_card_questions),
                    multiline=True, hint="One question per line, at most 20."),
        _switch(AGENT_BLOCK, "Transfer to an agent", values.to_agent_enabled, "On", "Off"),
        context(thresholds_text(settings)),
    ]
    return _view(blocks, callback_id=FORM_CALLBACK, metadata=metadata.to_json(), submit="Review", close="Cancel")


def preparing_view(ctx: RenderContext, metadata: ModalMetadata, names: list[str]) -> dict[str, Any]:
    """The ack of a valid form: the review follows when the bot has what Desk had stored."""
    changed = ", ".join(LABELS[name] for name in names)
    return _view(
        [section(f":hourglass_flowing_sand: Preparing the review of {language_title(metadata.tag)} in {_where(ctx)}: "
                 f"{escape(changed)}…")],
        callback_id=NOTICE_CALLBACK,
    )


def review_view(ctx: RenderContext, metadata: ModalMetadata, read: EditableSettings,
                wanted: EditableSettings) -> dict[str, Any]:
    """Each changed field, old → new, what Desk will do; Apply (submit) and Back (to the form)."""
    blocks: list[dict[str, Any]] = [
        section(f":warning: Change the chatbot settings of {language_title(metadata.tag)} in {_where(ctx)}? "
                "Desk applies this *in production at once*."),
    ]
    for label, old, new in change_lines(read, wanted):
        blocks.append(section(fit(f"*{escape(label.capitalize())}*\nnow: {escape(_shorten(old))}\n"
                                  f"new: {escape(_shorten(new))}")))
    back = ButtonElement(text=PlainTextObject(text="Back"), action_id=BACK_ACTION, value=metadata.change)
    blocks.append(ActionsBlock(elements=[back]).to_dict())
    blocks.append(context("Only an admin can apply. Desk is read again first: if the settings changed since this "
                          "modal opened, nothing is written."))
    review = ModalMetadata(metadata.app, metadata.tag, metadata.change, {})
    return _view(blocks, callback_id=REVIEW_CALLBACK, metadata=review.to_json(), submit="Apply", close="Cancel")


def applying_view(ctx: RenderContext, metadata: ModalMetadata) -> dict[str, Any]:
    return _view(
        [section(f":hourglass_flowing_sand: Applying the settings of {language_title(metadata.tag)} in "
                 f"{_where(ctx)}…")],
        callback_id=NOTICE_CALLBACK,
    )


def _shorten(text: str) -> str:
    return text if len(text) <= SHOWN_LIMIT else text[: SHOWN_LIMIT - 1] + "…"
