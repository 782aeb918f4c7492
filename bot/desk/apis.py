"""The Desk REST APIs the client calls (docs/desk-api.md §1.1, §8, §9, §12), and their rate limit.

Every one is `POST /v4/openim_console_http_svc/{command}` with the same query string and
envelope; each has its own limit of 5 calls per second per app (docs/desk-api.md §2), so
each gets its own limiter.
"""

from __future__ import annotations

from enum import StrEnum

SERVICE_PATH = "/v4/openim_console_http_svc/"
TENCENT_CALLS_PER_SECOND = 5  # per API and per app (SDKAppID)


class Api(StrEnum):
    LANGUAGES = "robot_get_language_list"
    ADD_LANGUAGE = "robot_add_language"
    DEL_LANGUAGE = "robot_del_language"
    LIST_FAQ = "list_faq"
    ROBOT_CONFIG = "desc_robot_config"
    UPDATE_ROBOT_CONFIG = "update_robot_config"

    @property
    def path(self) -> str:
        return SERVICE_PATH + self.value

    @property
    def writes(self) -> bool:
        """Whether a call changes the chatbot (and so may never be repeated blindly, §8)."""
        return self in (Api.ADD_LANGUAGE, Api.DEL_LANGUAGE, Api.UPDATE_ROBOT_CONFIG)
