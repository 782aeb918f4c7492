"""Slack listeners: one module per kind of event, each with a `register(app, deps)` function.

Listeners are thin: parse, call, render, reply. The ack is answered inline without
I/O; anything that may wait on Desk, Slack or the database runs in a lazy listener.
"""

from __future__ import annotations

from slack_bolt import App

from bot.deps import BotDeps
from handlers import actions, commands, home, settings, steps


def register_all(app: App, deps: BotDeps) -> None:
    commands.register(app, deps)
    actions.register(app, deps)
    home.register(app, deps)
    settings.register(app, deps)
    steps.register(app, deps)
