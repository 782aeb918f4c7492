"""Who may add and remove languages: DESK_ADMINS (or DESK_<APP>_ADMINS), users and user groups.

A user-group ID (`S…`) is resolved with Slack's `usergroups.users.list` (scope
`usergroups:read`) and cached for `GROUP_TTL` seconds, so a burst of clicks costs one call;
a group Slack will not resolve counts as empty (nobody gets in through it) and is logged once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import cachetools
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)

GROUP_TTL = 300.0  # seconds a user group's members are trusted before Slack is asked again


@dataclass(frozen=True)
class AdminList:
    """One app's admins as configured, and the variable that configured them."""

    principals: tuple[str, ...]
    variable: str
    off: bool = False  # the variable says `none`: management turned off on purpose

    @property
    def enabled(self) -> bool:
        return bool(self.principals)

    @property
    def users(self) -> frozenset[str]:
        return frozenset(p for p in self.principals if p[0] in "UW")

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(p for p in self.principals if p[0] == "S")

    def mentions(self) -> str:
        """The admins as Slack shows them: <@U…> for people, <!subteam^S…> for groups."""
        return ", ".join(f"<!subteam^{p}>" if p[0] == "S" else f"<@{p}>" for p in self.principals[:20])


class AdminDirectory:
    """Answers "may this user change this app's languages?" for every app."""

    def __init__(
        self,
        admins: Mapping[str, AdminList],
        slack: WebClient,
        *,
        ttl: float = GROUP_TTL,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._admins = dict(admins)
        self._slack = slack
        self._lock = threading.Lock()
        self._groups: cachetools.TTLCache[str, frozenset[str]] = cachetools.TTLCache(maxsize=256, ttl=ttl, timer=timer)
        self._warned: set[str] = set()

    def admins(self, app: str) -> AdminList:
        return self._admins.get(app) or AdminList((), "DESK_ADMINS")

    def is_admin(self, app: str, user: str) -> bool:
        admins = self.admins(app)
        if not admins.enabled or not user:
            return False
        if user in admins.users:
            return True
        return any(user in self._members(group) for group in admins.groups)

    def _members(self, group: str) -> frozenset[str]:
        with self._lock:
            cached = self._groups.get(group)
            if cached is not None:
                return cached
            # Held while asking Slack: concurrent clicks wait for one answer instead of each asking.
            members = self._fetch(group)
            self._groups[group] = members
            return members

    def _fetch(self, group: str) -> frozenset[str]:
        try:
            response = self._slack.usergroups_users_list(usergroup=group)
        except SlackApiError as error:
            code = error.response.get("error", "error") if error.response is not None else "error"
            self._warn_once(group, f"Slack refused usergroups.users.list ({code})")
            return frozenset()
        except Exception as error:  # noqa: BLE001  unreachable Slack: nobody gets in through the group
            self._warn_once(group, f"Slack could not be reached ({type(error).__name__})")
            return frozenset()
        users: Sequence[object] = response.get("users") or []
        return frozenset(user for user in users if isinstance(user, str))

    def _warn_once(self, group: str, why: str) -> None:
        if group not in self._warned:
            self._warned.add(group)
            log.warning(
                "admin user group %s could not be resolved: %s; its members are not admins until it can be "
                "(the bot needs the usergroups:read scope)",
                group,
                why,
            )
