"""The Desk client: a Tencent Cloud Desk chatbot's languages (read, add, delete), whether each
is ready to serve, and each language's chatbot settings (read, write). Knows nothing about Slack.

It takes plain arguments (no bot settings), so it can be used on its own: build a
`UserSigSource`, a limiter and a cache, and pass them to `DeskClient`. The bot's
composition root (`bot/boot.py`) does exactly that from its settings.
"""

from bot.desk.apis import Api
from bot.desk.cache import Cache, InProcessCache, LanguageCache
from bot.desk.client import DeskClient
from bot.desk.errors import DeskError, RetryClass, TransportCode
from bot.desk.languages import ADVANCED_EDITION_LANGUAGE_LIMIT, SUPPORTED_TAGS, suggest_tag
from bot.desk.limiter import InProcessLimiter, RateLimiter
from bot.desk.models import Language, LanguageList
from bot.desk.readiness import FaqCount, Flag, LanguageReadiness, ReadinessReport, ReadinessRules, RobotSettings
from bot.desk.usersig import UserSigSource
from bot.desk.writes import WriteAction, WriteOutcome, WriteStatus

__all__ = [
    "ADVANCED_EDITION_LANGUAGE_LIMIT",
    "SUPPORTED_TAGS",
    "Api",
    "Cache",
    "DeskClient",
    "DeskError",
    "FaqCount",
    "Flag",
    "InProcessCache",
    "InProcessLimiter",
    "Language",
    "LanguageCache",
    "LanguageList",
    "LanguageReadiness",
    "RateLimiter",
    "ReadinessReport",
    "ReadinessRules",
    "RetryClass",
    "RobotSettings",
    "TransportCode",
    "UserSigSource",
    "WriteAction",
    "WriteOutcome",
    "WriteStatus",
    "suggest_tag",
]
