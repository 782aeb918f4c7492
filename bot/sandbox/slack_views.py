"""Slack's modals as the fake Web API plays them: trigger_ids, the view stack, and the rules views
are held to (docs/slack-platform.md §16).

`ModalViews` is the state behind `views.open`, `views.update` and `views.push` in `FakeSlack`
(bot/sandbox/slack_emulator.py), and what a `view_submission`'s answer does to the stack. It
does no I/O and keeps no lock (the fake calls it under its own), so tests may drive it in-process
with a settable clock. Each method takes the decoded request body and returns Slack's answer
(`{"ok": true, "view": …}`, or `{"ok": false, "error": …}`).

`state_values` builds `view.state.values` as Slack sends it in a `view_submission`, from the
view's input blocks and the values a test says the user entered.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import count
from typing import Any

__all__ = [
    "MAX_BLOCKS",
    "MAX_CALLBACK_ID",
    "MAX_PRIVATE_METADATA",
    "MAX_STACK",
    "MAX_TEXT",
    "MAX_VIEW_BYTES",
    "TRIGGER_LIFETIME",
    "ModalViews",
    "SubmissionOutcome",
    "new_trigger_id",
    "state_values",
    "view_problems",
]

TRIGGER_LIFETIME = 3.0  # seconds a trigger_id can be exchanged after it was issued
MAX_STACK = 3  # views in one modal's stack
MAX_TEXT = 24  # characters of title, submit and close
MAX_BLOCKS = 100
MAX_PRIVATE_METADATA = 3000
MAX_CALLBACK_ID = 255
MAX_EXTERNAL_ID = 255
MAX_VIEW_BYTES = 250_000  # "250kb", read as the stricter 250 000 bytes of the JSON view
_BUTTON_FIELDS = ("title", "submit", "close")
_OPTION_ELEMENTS = ("static_select", "radio_buttons")


def new_trigger_id(now: float) -> str:
    """A trigger_id of Slack's shape, `<digits>.<digits>.<hex>`."""
    hexpart = uuid.uuid4().hex
    return f"{int(now * 1000)}.{int(hexpart[:8], 16)}.{hexpart}"


@dataclass
class _Trigger:
    user_id: str
    issued_at: float
    exchanged: bool = False


@dataclass
class SubmissionOutcome:
    """What the user sees after the app answered a `view_submission`.

    `action` is the answer's `response_action` ("" for an empty answer, which closes the view);
    `problems` is non-empty when Slack would refuse the answer (the user then sees Slack's
    generic error and the view stays as it was)."""

    action: str
    errors: dict[str, str] = field(default_factory=dict)
    view: dict[str, Any] | None = None  # the view now on top of the stack, if any
    problems: list[str] = field(default_factory=list)


class ModalViews:
    """Every user's modal stack and the trigger_ids issued; see the module docstring."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        team_id: str,
        app_id: str,
        bot_id: str,
    ) -> None:
        self._clock = clock
        self._team_id = team_id
        self._app_id = app_id
        self._bot_id = bot_id
        self._triggers: dict[str, _Trigger] = {}
        self._views: dict[str, dict[str, Any]] = {}
        self._owners: dict[str, str] = {}  # view id -> user
        self._stacks: dict[str, list[str]] = {}  # user -> view ids, root first
        self._external: dict[str, str] = {}  # external_id -> view id
        self._ids = count(1)

    # -- what tests ask ----------------------------------------------------------------------

    def mint_trigger(self, user_id: str) -> str:
        """A trigger_id for `user_id`, issued now: what a command or a click carries."""
        trigger_id = new_trigger_id(self._clock())
        self._triggers[trigger_id] = _Trigger(user_id, self._clock())
        return trigger_id

    def stack(self, user_id: str) -> list[dict[str, Any]]:
        """`user_id`'s open modal, root view first; empty when none is open."""
        return [copy.deepcopy(self._views[v]) for v in self._stacks.get(user_id, [])]

    def view(self, view_id: str) -> dict[str, Any] | None:
        """The view `view_id` as Slack last returned it, while it is in a stack."""
        found = self._views.get(view_id)
        return copy.deepcopy(found) if found is not None else None

    def clear(self) -> None:
        self._triggers.clear()
        self._views.clear()
        self._owners.clear()
        self._stacks.clear()
        self._external.clear()

    # -- the Web API methods -----------------------------------------------------------------

    def open(self, body: Mapping[str, Any]) -> dict[str, Any]:
        try:
            view = _view_argument(body)
            trigger = self._trigger(body)
            self._check_external(view)
        except _Refused as refused:
            return refused.answer
        trigger.exchanged = True
        self._close_all(trigger.user_id)  # a new modal replaces the one open
        stored = self._store(view, trigger.user_id, root=None, previous=None)
        return {"ok": True, "view": copy.deepcopy(stored)}

    def push(self, body: Mapping[str, Any]) -> dict[str, Any]:
        try:
            view = _view_argument(body)
            trigger = self._trigger(body)
            stack = self._stacks.get(trigger.user_id, [])
            if not stack:
                raise _Refused(_invalid("[ERROR] no modal is open for this trigger's user to push onto"))
            if len(stack) >= MAX_STACK:
                raise _Refused({"ok": False, "error": "push_limit_reached"})
            self._check_external(view)
        except _Refused as refused:
            return refused.answer
        trigger.exchanged = True
        stored = self._store(view, trigger.user_id, root=stack[0], previous=stack[-1])
        return {"ok": True, "view": copy.deepcopy(stored)}

    def update(self, body: Mapping[str, Any]) -> dict[str, Any]:
        try:
            view = _view_argument(body)
            view_id, external_id = str(body.get("view_id") or ""), str(body.get("external_id") or "")
            if bool(view_id) == bool(external_id):
                raise _Refused(_invalid("[ERROR] exactly one of view_id or external_id is required"))
            view_id = view_id or self._external.get(external_id, "")
            current = self._views.get(view_id)
            if current is None:
                raise _Refused({"ok": False, "error": "not_found"})
            wanted = body.get("hash")
            if wanted and str(wanted) != current["hash"]:
                raise _Refused({"ok": False, "error": "hash_conflict"})
            self._check_external(view, keep=view_id)
        except _Refused as refused:
            return refused.answer
        return {"ok": True, "view": copy.deepcopy(self._replace(view_id, view))}

    # -- a view_submission's answer ----------------------------------------------------------

    def answer_submission(self, view_id: str, answer: Mapping[str, Any] | None) -> SubmissionOutcome:
        """Apply the app's answer to a `view_submission` of `view_id` (its ack's JSON body, or
        None for an empty ack) as Slack does, and say what the user sees."""
        current = self._views.get(view_id)
        if current is None:
            return SubmissionOutcome("", problems=[f"no open view {view_id}"])
        user = self._owners[view_id]
        action = str((answer or {}).get("response_action") or "")
        if action == "":
            self._close(view_id)
            return SubmissionOutcome(action, view=self._top(user))
        if action == "clear":
            self._close_all(user)
            return SubmissionOutcome(action)
        if action == "errors":
            errors = dict((answer or {}).get("errors") or {})
            inputs = {b.get("block_id") for b in current.get("blocks") or [] if b.get("type") == "input"}
            problems = [f"errors names {key!r}, not an input block of the view" for key in errors if key not in inputs]
            if not errors:
                problems.append("errors is empty")
            return SubmissionOutcome(action, errors=errors, view=self.view(view_id), problems=problems)
        if action not in ("update", "push"):
            return SubmissionOutcome(action, view=self.view(view_id), problems=[f"unknown response_action {action!r}"])
        try:
            new_view = _view_argument(answer or {})
            if action == "push" and len(self._stacks[user]) >= MAX_STACK:
                raise _Refused({"ok": False, "error": "push_limit_reached"})
        except _Refused as refused:
            return SubmissionOutcome(action, view=self.view(view_id), problems=refused.messages())
        if action == "update":
            return SubmissionOutcome(action, view=copy.deepcopy(self._replace(view_id, new_view)))
        stack = self._stacks[user]
        stored = self._store(new_view, user, root=stack[0], previous=stack[-1])
        return SubmissionOutcome(action, view=copy.deepcopy(stored))

    # -- inside ------------------------------------------------------------------------------

    def _trigger(self, body: Mapping[str, Any]) -> _Trigger:
        trigger_id = str(body.get("trigger_id") or body.get("interactivity_pointer") or "")
        if not trigger_id:
            raise _Refused(_invalid("[ERROR] missing required field: trigger_id"))
        trigger = self._triggers.get(trigger_id)
        if trigger is None:
            raise _Refused({"ok": False, "error": "invalid_trigger_id"})
        if trigger.exchanged:
            raise _Refused({"ok": False, "error": "exchanged_trigger_id"})
        if self._clock() - trigger.issued_at > TRIGGER_LIFETIME:
            raise _Refused({"ok": False, "error": "expired_trigger_id"})
        return trigger

    def _check_external(self, view: dict[str, Any], keep: str = "") -> None:
        external_id = str(view.get("external_id") or "")
        if external_id and self._external.get(external_id, keep) != keep:
            raise _Refused({"ok": False, "error": "duplicate_external_id"})

    def _store(self, view: dict[str, Any], user: str, *, root: str | None, previous: str | None) -> dict[str, Any]:
        view_id = f"V0FAKE{next(self._ids):05d}"
        stored = self._shown(view, view_id, root=root or view_id, previous=previous)
        self._views[view_id] = stored
        self._owners[view_id] = user
        self._stacks.setdefault(user, []).append(view_id)
        if stored["external_id"]:
            self._external[stored["external_id"]] = view_id
        return stored

    def _replace(self, view_id: str, view: dict[str, Any]) -> dict[str, Any]:
        current = self._views[view_id]
        if current["external_id"]:
            self._external.pop(current["external_id"], None)
        stored = self._shown(view, view_id, root=current["root_view_id"], previous=current["previous_view_id"])
        self._views[view_id] = stored
        if stored["external_id"]:
            self._external[stored["external_id"]] = view_id
        return stored

    def _shown(self, view: dict[str, Any], view_id: str, *, root: str, previous: str | None) -> dict[str, Any]:
        """The view as Slack returns it: what was sent, with Slack's own fields and a new hash."""
        return {
            "id": view_id,
            "team_id": self._team_id,
            "type": "modal",
            "title": copy.deepcopy(view.get("title")),
            "submit": copy.deepcopy(view.get("submit")),
            "close": copy.deepcopy(view.get("close")),
            "blocks": copy.deepcopy(view.get("blocks") or []),
            "private_metadata": str(view.get("private_metadata") or ""),
            "callback_id": str(view.get("callback_id") or ""),
            "external_id": str(view.get("external_id") or ""),
            "state": {"values": {}},
            "hash": f"{int(self._clock())}.{uuid.uuid4().hex[:8]}",
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "root_view_id": root,
            "previous_view_id": previous,
            "app_id": self._app_id,
            "app_installed_team_id": self._team_id,
            "bot_id": self._bot_id,
        }

    def _top(self, user: str) -> dict[str, Any] | None:
        stack = self._stacks.get(user) or []
        return self.view(stack[-1]) if stack else None

    def _close(self, view_id: str) -> None:
        """Close `view_id` and the views pushed above it."""
        user = self._owners[view_id]
        stack = self._stacks[user]
        for closed in stack[stack.index(view_id) :]:
            self._forget(closed)
        del stack[stack.index(view_id) :]
        if not stack:
            del self._stacks[user]

    def _close_all(self, user: str) -> None:
        stack = self._stacks.get(user)
        if stack:
            self._close(stack[0])

    def _forget(self, view_id: str) -> None:
        view = self._views.pop(view_id)
        self._owners.pop(view_id, None)
        if view["external_id"]:
            self._external.pop(view["external_id"], None)


def _invalid(*messages: str) -> dict[str, Any]:
    return {"ok": False, "error": "invalid_arguments", "response_metadata": {"messages": list(messages)}}


class _Refused(Exception):
    """Slack's `ok: false` answer to a call, raised where the check fails."""

    def __init__(self, answer: dict[str, Any]) -> None:
        super().__init__(answer["error"])
        self.answer = answer

    def messages(self) -> list[str]:
        return list((self.answer.get("response_metadata") or {}).get("messages") or [self.answer["error"]])


def _view_argument(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body's `view`, or `_Refused` with Slack's refusal of it."""
    view = body.get("view")
    if view is None or view == "":
        raise _Refused(_invalid("[ERROR] missing required field: view"))
    if not isinstance(view, dict):
        raise _Refused(_invalid("[ERROR] view must be a JSON object [json-pointer:/view]"))
    if len(json.dumps(view, ensure_ascii=False).encode("utf-8")) > MAX_VIEW_BYTES:
        raise _Refused({"ok": False, "error": "view_too_large"})
    problems = view_problems(view)
    if problems:
        raise _Refused(_invalid(*problems))
    return view


def view_problems(view: Any) -> list[str]:
    """What Slack objects to in a modal view, in the words of its `response_metadata.messages`;
    empty when the view is acceptable (size aside: see `MAX_VIEW_BYTES`)."""
    if not isinstance(view, dict):
        return ["[ERROR] view must be a JSON object [json-pointer:/view]"]
    problems: list[str] = []
    if view.get("type") != "modal":
        problems.append("[ERROR] must be `modal` [json-pointer:/view/type]")
    for name in _BUTTON_FIELDS:
        text = view.get(name)
        if text is None:
            if name == "title":
                problems.append("[ERROR] missing required field: title [json-pointer:/view/title]")
            continue
        problems.extend(_plain_text_problems(text, f"/view/{name}"))
    blocks = view.get("blocks")
    if not isinstance(blocks, list):
        problems.append("[ERROR] missing required field: blocks [json-pointer:/view/blocks]")
        blocks = []
    elif len(blocks) > MAX_BLOCKS:
        problems.append(f"[ERROR] no more than {MAX_BLOCKS} items allowed [json-pointer:/view/blocks]")
    if view.get("submit") is None and any(isinstance(b, dict) and b.get("type") == "input" for b in blocks):
        problems.append("[ERROR] submit is required when an input block is present [json-pointer:/view/submit]")
    for name, limit in (
        ("private_metadata", MAX_PRIVATE_METADATA),
        ("callback_id", MAX_CALLBACK_ID),
        ("external_id", MAX_EXTERNAL_ID),
    ):
        value = view.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            problems.append(f"[ERROR] must be a string [json-pointer:/view/{name}]")
        elif len(value) > limit:
            problems.append(f"[ERROR] must be less than {limit + 1} characters [json-pointer:/view/{name}]")
    return problems


def _plain_text_problems(text: Any, pointer: str) -> list[str]:
    if not isinstance(text, dict) or text.get("type") != "plain_text":
        return [f"[ERROR] must be a plain_text text object [json-pointer:{pointer}/type]"]
    value = text.get("text")
    if not isinstance(value, str) or not value:
        return [f"[ERROR] must be a non-empty string [json-pointer:{pointer}/text]"]
    if len(value) > MAX_TEXT:
        return [f"[ERROR] must be less than {MAX_TEXT + 1} characters [json-pointer:{pointer}/text]"]
    return []


# -- view.state.values, as a view_submission carries them ------------------------------------


def state_values(view: Mapping[str, Any], entered: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`view.state.values` of `view`: every input block's element, holding what `entered` gives
    for its block_id, else its initial value (what the user left untouched).

    A value is the text for a `plain_text_input` (None for empty), an option's `value` for a
    `static_select` or `radio_buttons` (None for none chosen), and a list of option values for
    `checkboxes`. A block_id or option that is not in the view is a mistake in the test: ValueError."""
    entered = dict(entered or {})
    inputs = {
        str(block.get("block_id")): block["element"]
        for block in view.get("blocks") or []
        if block.get("type") == "input" and isinstance(block.get("element"), dict)
    }
    unknown = sorted(set(entered) - set(inputs))
    if unknown:
        raise ValueError(f"no input block {unknown} in the view (input blocks: {sorted(inputs)})")
    values: dict[str, Any] = {}
    for block_id, element in inputs.items():
        action_id = str(element.get("action_id") or "")
        given = block_id in entered
        values[block_id] = {action_id: _element_state(element, entered.get(block_id), given)}
    return values


def _element_state(element: Mapping[str, Any], value: Any, given: bool) -> dict[str, Any]:
    kind = str(element.get("type") or "")
    if kind == "plain_text_input":
        text = value if given else element.get("initial_value")
        return {"type": kind, "value": text if text not in (None, "") else None}
    if kind in _OPTION_ELEMENTS:
        option = _option(element, value) if given and value is not None else None
        chosen = option if given else element.get("initial_option")
        return {"type": kind, "selected_option": copy.deepcopy(chosen)}
    if kind == "checkboxes":
        if given:
            chosen_options = [_option(element, v) for v in value or []]
        else:
            chosen_options = list(element.get("initial_options") or [])
        return {"type": kind, "selected_options": copy.deepcopy(chosen_options)}
    raise ValueError(f"the fake does not fill {kind!r} elements")


def _option(element: Mapping[str, Any], value: Any) -> dict[str, Any]:
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options.extend(group.get("options") or [])
    for option in options:
        if option.get("value") == value:
            return dict(option)
    raise ValueError(f"no option {value!r} in {element.get('action_id')!r}")
