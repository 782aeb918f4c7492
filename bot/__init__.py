"""desk-languages-bot: Slack chat-ops for Tencent Cloud Contact Center Desk's chatbot languages.

The entry points (cli, serve, wsgi) call the composition root (boot); slack/ speaks Slack, the
feature packages (digests, watch, management) sit below it, desk/ and shared/ below them, and
sandbox/ holds the emulators only the demo and DESK_SANDBOX=1 use (docs/architecture.md).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("desk-languages-bot")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
