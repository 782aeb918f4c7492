"""Slack listeners: one module per kind of event, each with a `register(app, ...)` function."""
