"""The WSGI entry point for HTTP mode: `bot.wsgi:application`, for any WSGI server.

`python -m bot serve` runs the bot's own server; this module is for running the
same app under another server. `application` is built by the composition root on
first access (in each worker), not at import, so importing this module is cheap.
"""

from __future__ import annotations

from typing import Any

from bot.boot import build_bot, load_configuration
from bot.slack.edge import BotWSGI


def create_application() -> BotWSGI:
    """Build everything from the environment (what a server's worker does once), jobs started."""
    return build_bot(load_configuration()).start_jobs().wsgi


def __getattr__(name: str) -> Any:
    if name == "application":
        built = create_application()
        globals()["application"] = built
        return built
    raise AttributeError(name)
