"""desk-languages-bot: Slack chat-ops for Tencent Cloud Contact Center Desk's chatbot languages."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("desk-languages-bot")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
