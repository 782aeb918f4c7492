"""The Desk client: reads a Tencent Cloud Desk chatbot's languages. Knows nothing about Slack."""

from bot.desk.client import DeskClient
from bot.desk.errors import DeskError, RetryClass
from bot.desk.factory import build_desk_client, region_label, resolve_sandbox
from bot.desk.models import Language, LanguageList

__all__ = [
    "DeskClient",
    "DeskError",
    "Language",
    "LanguageList",
    "RetryClass",
    "build_desk_client",
    "region_label",
    "resolve_sandbox",
]
