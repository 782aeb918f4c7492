"""The declared state: `desk-languages.toml` (or DESK_STATE_FILE), read with tomllib, validated.

One table per app, named as DESK_APPS names it (`default` without DESK_APPS):

    [prod]
    languages = ["en", "zh", "ja"]        # required: every language the chatbot serves
    default = "en"                        # optional: checked, never changed (only the console can)

    [prod.require]                        # optional: what `status` and `plan` require of a language
    faq_ratio = 0.5                       # of the default language's live FAQ questions (0: off)
    fallback = true
    welcome_card = true

    [prod.settings.ja]                    # optional, per declared language: the chatbot settings
    fallback_message = "..."
    welcome_card = true
    welcome_card_title = "..."
    welcome_card_questions = ["...", "..."]
    to_agent = true

Every problem is a `ConfigError` of one line naming the key path (`prod.languages[2]`) and what to
do; a typo in a key is an error, never ignored. docs/change-control.md documents the format.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bot.config import ConfigError, UnknownApp
from bot.desk.languages import ADVANCED_EDITION_LANGUAGE_LIMIT, SUPPORTED_TAGS, suggest_tag
from bot.desk.models import language_name
from bot.desk.readiness import ReadinessRules
from bot.management.settings_form import EditableSettings, check_values

APP_KEYS = ("languages", "default", "require", "settings")
REQUIRE_KEYS = ("faq_ratio", "fallback", "welcome_card")
# The file's name for each chatbot setting, and the EditableSettings field it sets.
SETTING_KEYS: Mapping[str, str] = {
    "fallback_message": "fallback_message",
    "welcome_card": "welcome_card_enabled",
    "welcome_card_title": "welcome_card_title",
    "welcome_card_questions": "welcome_card_questions",
    "to_agent": "to_agent_enabled",
}
_BOOLEAN_SETTINGS = {"welcome_card", "to_agent"}
_NOTHING = EditableSettings("", False, "", (), False)  # a base to check one declared field against


@dataclass(frozen=True)
class DeclaredApp:
    """What the file says of one app. `settings`: per tag, EditableSettings field → value, only the
    fields declared. `rules`: None without `[app.require]` (readiness is then not part of the plan,
    and `status` keeps its built-in rules)."""

    name: str
    languages: tuple[str, ...]
    default: str | None = None
    rules: ReadinessRules | None = None
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class DeclaredState:
    """The file and its apps (only those it declares, in the file's order)."""

    path: Path
    apps: Mapping[str, DeclaredApp]

    def app(self, name: str) -> DeclaredApp | None:
        return self.apps.get(name)


def load_declared(path: Path, app_names: Sequence[str]) -> DeclaredState:
    """The declared state in `path`, checked against the configured `app_names`; ConfigError otherwise."""
    where = str(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(where, f"cannot be read ({error.strerror or type(error).__name__})",
                          "Check the path in DESK_STATE_FILE and the file's permissions.") from None
    except UnicodeDecodeError:
        raise ConfigError(where, "is not UTF-8 text", "Save it as UTF-8.") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(where, f"is not valid TOML: {error}", "Fix the place it names (https://toml.io).") from None
    return parse_declared(document, app_names, where=where, path=path)


def parse_declared(
    document: Mapping[str, Any], app_names: Sequence[str], *, where: str = "desk-languages.toml",
    path: Path | None = None,
) -> DeclaredState:
    """The declared state of an already parsed TOML document (what `load_declared` checks)."""
    apps: dict[str, DeclaredApp] = {}
    for name, table in document.items():
        if name not in app_names:
            fix = UnknownApp(name, tuple(app_names)).fix
            raise ConfigError(f"{where}: {name}", "is not one of this bot's apps (DESK_APPS)", fix)
        apps[name] = _app(_table(table, f"{where}: {name}"), name, f"{where}: {name}")
    return DeclaredState(path or Path(where), apps)


def _app(table: Mapping[str, Any], name: str, at: str) -> DeclaredApp:
    _known_keys(table, APP_KEYS, at)
    if "languages" not in table:
        raise ConfigError(f"{at}.languages", "is missing",
                          'List every language the chatbot serves, e.g. languages = ["en", "zh"].')
    languages = _languages(table["languages"], f"{at}.languages")
    default = table.get("default")
    if default is not None:
        if not isinstance(default, str):
            raise ConfigError(f"{at}.default", "is not a string", 'Write the default language\'s tag, e.g. "en".')
        if default not in languages:
            raise ConfigError(f"{at}.default", f"{default!r} is not in {name}.languages",
                              "Add it to languages, or name one of them.")
    rules = _rules(_table(table["require"], f"{at}.require"), f"{at}.require") if "require" in table else None
    settings = _settings(_table(table.get("settings", {}), f"{at}.settings"), languages, name, f"{at}.settings")
    return DeclaredApp(name, languages, default, rules, settings)


def _languages(value: Any, at: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(at, "is not a list", 'Write the tags as a list, e.g. languages = ["en", "zh"].')
    seen: list[str] = []
    for index, tag in enumerate(value):
        here = f"{at}[{index}]"
        if not isinstance(tag, str):
            raise ConfigError(here, "is not a string", 'Write each tag in quotes, e.g. "vi".')
        problem, fix = _tag_problem(tag)
        if problem is not None:
            raise ConfigError(here, problem, fix)
        if tag in seen:
            raise ConfigError(here, f"{tag!r} is listed twice", "List each language once.")
        seen.append(tag)
    if not seen:
        raise ConfigError(at, "is empty", "A chatbot serves at least its default language: list it.")
    if len(seen) > ADVANCED_EDITION_LANGUAGE_LIMIT:
        raise ConfigError(
            at, f"lists {len(seen)} languages, and Desk allows {ADVANCED_EDITION_LANGUAGE_LIMIT} (the default counted)",
            f"Keep at most {ADVANCED_EDITION_LANGUAGE_LIMIT}.",
        )
    return tuple(seen)


def _tag_problem(tag: str) -> tuple[str | None, str]:
    """What `add` would say of `tag`, in two parts; (None, "") for a tag Desk supports. The empty
    tag is the default language of an app created without one (docs/desk-api.md §3.2)."""
    if tag == "" or tag in SUPPORTED_TAGS:
        return None, ""
    supported = ", ".join(SUPPORTED_TAGS)
    suggested = suggest_tag(tag)
    if suggested is not None:
        return f"{tag[:40]!r} is not a tag Desk uses", \
            f"Did you mean {suggested!r} ({language_name(suggested)})? Desk supports {supported}."
    return f"{tag[:40]!r} is not a language Desk's chatbot supports", f"Use one of {supported}."


def _rules(table: Mapping[str, Any], at: str) -> ReadinessRules:
    _known_keys(table, REQUIRE_KEYS, at)
    rules = ReadinessRules()
    if "faq_ratio" in table:
        ratio = table["faq_ratio"]
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not math.isfinite(ratio) \
                or not 0 <= ratio <= 1:
            raise ConfigError(f"{at}.faq_ratio", f"{ratio!r} is not a number from 0 to 1",
                              "Write the share of the default language's FAQ questions, e.g. 0.5 (0 turns it off).")
        rules = replace(rules, faq_ratio=float(ratio))
    for name in ("fallback", "welcome_card"):
        if name in table:
            rules = replace(rules, **{name: _boolean(table[name], f"{at}.{name}")})
    return rules


def _settings(
    table: Mapping[str, Any], languages: tuple[str, ...], app: str, at: str
) -> dict[str, dict[str, Any]]:
    settings: dict[str, dict[str, Any]] = {}
    for tag, values in table.items():
        here = f"{at}.{tag}" if tag else f'{at}.""'
        if tag not in languages:
            raise ConfigError(here, f"{tag!r} is not in {app}.languages",
                              "Declare settings only for a language you declare.")
        declared: dict[str, Any] = {}
        for key, value in _table(values, here).items():
            if key not in SETTING_KEYS:
                _known_keys({key: value}, tuple(SETTING_KEYS), here)
            declared[SETTING_KEYS[key]] = _setting(key, value, f"{here}.{key}")
        settings[tag] = declared
    return settings


def _setting(key: str, value: Any, at: str) -> Any:
    if key in _BOOLEAN_SETTINGS:
        return _boolean(value, at)
    if key == "welcome_card_questions":
        if not isinstance(value, list) or not all(isinstance(q, str) for q in value):
            raise ConfigError(at, "is not a list of strings",
                              'Write the questions as a list, e.g. ["Where is my order?"].')
        for index, question in enumerate(value):
            if not question.strip() or "\n" in question:
                raise ConfigError(f"{at}[{index}]", "is empty or more than one line",
                                  "Write each question on one line.")
        checked: Any = tuple(q.strip() for q in value)
    elif isinstance(value, str):
        checked = value.replace("\r\n", "\n").strip()
    else:
        raise ConfigError(at, "is not a string", "Write it in quotes (triple quotes for several lines).")
    problem = check_values(replace(_NOTHING, **{SETTING_KEYS[key]: checked}))
    if problem is not None:
        raise ConfigError(at, problem.rstrip("."), "Shorten it.")
    return checked


def _table(value: Any, at: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(at, "is not a table", f"Write it as a table: [{at.split(': ', 1)[-1]}].")
    return value


def _boolean(value: Any, at: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(at, f"{value!r} is not true or false", "Write true or false, without quotes.")
    return value


def _known_keys(table: Mapping[str, Any], known: Sequence[str], at: str) -> None:
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            fix = f"Did you mean {close[0]!r}?" if close else f"The keys here are {', '.join(known)}."
            raise ConfigError(f"{at}.{key}" if at else str(key), "is not a key this file knows", fix)
