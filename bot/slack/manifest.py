"""`python -m bot manifest`: the Slack app manifest with this deployment's URLs filled in.

The manifest is kept as YAML text in `manifest.yml` at the top of the repository
and edited as text (no YAML library needed): the placeholder host is replaced, and
for Socket Mode the request URLs are dropped and `socket_mode_enabled` turned on.
"""

from __future__ import annotations

import re
from pathlib import Path

PLACEHOLDER = "https://APP.example.com"


MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"


def manifest_template() -> str:
    return MANIFEST.read_text(encoding="utf-8")


def render_manifest(url: str | None, *, socket_mode: bool = False) -> str:
    text = manifest_template()
    if socket_mode:
        text = "\n".join(line for line in text.splitlines() if not re.match(r"\s*(request_)?url:", line)) + "\n"
        return text.replace("socket_mode_enabled: false", "socket_mode_enabled: true")
    if not url or not re.fullmatch(r"https://[^\s/]+(/[^\s]*)?", url):
        raise ValueError("--url must be the app's public https:// address, e.g. https://my-bot.herokuapp.com")
    return text.replace(PLACEHOLDER, url.rstrip("/"))
