"""`python -m bot manifest`: the Slack app manifest with this deployment's URLs filled in.

The manifest is kept as YAML text in `manifest.yml` at the top of the repository
and edited as text (no YAML library needed): the placeholder host is replaced, and
for Socket Mode the request URLs are dropped and `socket_mode_enabled` turned on. The
Workflow Builder steps (`functions`) are appended from their one declaration,
`bot/slack/steps.py`, so the manifest and the code cannot disagree.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bot.slack.steps import manifest_functions

PLACEHOLDER = "https://APP.example.com"


MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"


def manifest_template() -> str:
    return MANIFEST.read_text(encoding="utf-8")


def render_manifest(url: str | None, *, socket_mode: bool = False) -> str:
    text = manifest_template() + functions_yaml()
    if socket_mode:
        text = "\n".join(line for line in text.splitlines() if not re.match(r"\s*(request_)?url:", line)) + "\n"
        return text.replace("socket_mode_enabled: false", "socket_mode_enabled: true")
    if not url or not re.fullmatch(r"https://[^\s/]+(/[^\s]*)?", url):
        raise ValueError("--url must be the app's public https:// address, e.g. https://my-bot.herokuapp.com")
    return text.replace(PLACEHOLDER, url.rstrip("/"))


def functions_yaml() -> str:
    """The manifest's `functions` section as YAML (strings double-quoted, as JSON writes them)."""
    return "functions:\n" + _yaml(manifest_functions(), 1)


def _yaml(value: Any, depth: int) -> str:
    pad = "  " * depth
    if isinstance(value, dict):
        if not value:
            return ""
        out = ""
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                out += f"{pad}{key}:\n{_yaml(item, depth + 1)}"
            else:
                out += f"{pad}{key}: {_scalar(item)}\n"
        return out
    if isinstance(value, list):
        return "".join(f"{pad}- {_scalar(item)}\n" for item in value)
    return f"{pad}{_scalar(value)}\n"


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return "{}" if isinstance(value, dict) else "[]"
    return json.dumps(value, ensure_ascii=False)
