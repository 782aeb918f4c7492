"""The one collection of configured Desk apps: the default app, the names, and a strict lookup
whose error suggests the closest name."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bot.cli import chosen_app
from bot.config import ConfigError, DeskApps, UnknownApp


@dataclass(frozen=True)
class App:
    name: str


APPS = DeskApps([App("prod"), App("staging"), App("dev")])


def test_the_first_app_is_the_default_and_the_order_is_kept() -> None:
    assert APPS.default == App("prod") and APPS.app(None) == App("prod")
    assert APPS.names == ("prod", "staging", "dev") and list(APPS) == [App("prod"), App("staging"), App("dev")]
    assert APPS.several and not DeskApps([App("prod")]).several


def test_an_unknown_name_is_an_error_that_suggests_the_closest_app() -> None:
    with pytest.raises(UnknownApp, match=r"^'stagign' is not a configured Desk app\. Did you mean 'staging'\? "
                                         r"The apps are prod, staging, dev\.$"):
        APPS.app("stagign")


def test_an_unknown_name_like_no_app_lists_them_all() -> None:
    with pytest.raises(UnknownApp) as raised:
        APPS.app("europe")
    assert raised.value.fix == "Use one of prod, staging, dev."


def test_get_says_none_for_an_unknown_name_where_a_caller_may_fall_back() -> None:
    assert APPS.get("staging") == App("staging")
    assert APPS.get("gone") is None and APPS.get(None) is None
    assert "dev" in APPS and "gone" not in APPS


def test_two_apps_of_one_name_or_none_at_all_are_refused() -> None:
    with pytest.raises(ValueError, match="two Desk apps have the same name: 'prod'"):
        DeskApps([App("prod"), App("prod")])
    with pytest.raises(ValueError, match="at least one Desk app"):
        DeskApps([])


def test_the_command_lines_app_option_names_itself_and_the_closest_app() -> None:
    assert chosen_app([App("prod"), App("staging")], None) == App("prod")
    with pytest.raises(ConfigError) as raised:
        chosen_app([App("prod"), App("staging")], "prdo")
    assert str(raised.value) == (
        "--app: 'prdo' is not one of this bot's apps. Did you mean 'prod'? The apps are prod, staging."
    )
