"""Several Desk apps in one bot (DESK_APPS), over real sockets: one emulator per app, each with its
own SDKAppID and key, the real Slack app on loopback and FakeSlack as Slack."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import RESERVED_APP_NAMES, ConfigError, load_settings
from bot.sandbox.desk_emulator import DeskEmulator, Fault
from bot.sandbox.slack_emulator import FakeSlack, block_action_body
from bot.slack.grammar import OPTIONS
from tests.support.served import clean_env
from tests.support.slack_harness import BOT_TOKEN, BotUnderTest, slack_env, texts
from tests.support.tiers import e2e_fixture

PROD, STAGING, EU = 1400000101, 1400000102, 1400000103
KEYS = {PROD: "prod-key-0123456789abcdef", STAGING: "staging-key-0123456789abcdef", EU: "eu-key-0123456789abcdef"}


def apps_env(emulators: dict[str, DeskEmulator], **extra: str) -> dict[str, str]:
    env = {"DESK_APPS": ",".join(emulators), "DESK_TIMEOUT": "1.0"}
    for name, emulator in emulators.items():
        prefix = f"DESK_{name.upper()}_"
        env |= {
            f"{prefix}SDKAPPID": str(emulator.sdkappid),
            f"{prefix}SECRET_KEY": KEYS[emulator.sdkappid],
            f"{prefix}API_URL": emulator.base_url,
        }
    env |= {"DESK_PROD_LABEL": "Production (Singapore)", "DESK_STAGING_LABEL": "Staging"}
    return env | extra


@e2e_fixture
def emulators() -> Iterator[dict[str, DeskEmulator]]:
    started = {
        "prod": DeskEmulator(sdkappid=PROD, key=KEYS[PROD], languages=[("en", 1), ("zh", 0), ("ja", 0)]),
        "staging": DeskEmulator(sdkappid=STAGING, key=KEYS[STAGING], languages=[("en", 1), ("zh", 0), ("vi", 0)]),
        "eu": DeskEmulator(sdkappid=EU, key=KEYS[EU], languages=[("en", 1), ("zh", 0), ("ja", 0)]),
    }
    for emulator in started.values():
        emulator.start()
    yield started
    for emulator in started.values():
        emulator.stop()


@pytest.fixture
def bot(emulators: dict[str, DeskEmulator]) -> Iterator[BotUnderTest]:
    with FakeSlack(token=BOT_TOKEN) as slack:
        settings = load_settings({**apps_env(emulators), **slack_env(slack)}, dotenv_path=None)
        served = BotUnderTest(settings, slack, emulators["prod"])
        try:
            yield served
        finally:
            served.close()


def answer(bot: BotUnderTest, text: str) -> dict[str, Any]:
    """The reply to `/desk-languages <text>`, in the ack or through the response_url."""
    reply = bot.command(text)
    assert reply.status == 200
    return reply.ack if reply.ack is not None else bot.reply(reply.name)


# --- configuration -------------------------------------------------------------------------------


def test_every_command_word_is_reserved_from_app_names() -> None:
    assert set(OPTIONS) <= RESERVED_APP_NAMES


@pytest.mark.parametrize(
    ("env", "variable", "says"),
    [
        ({"DESK_APPS": "prod,staging", "DESK_PROD_SDKAPPID": "1"}, "DESK_STAGING_SDKAPPID", "is not set"),
        ({"DESK_APPS": "prod,Stage!"}, "DESK_APPS", "not a valid app name"),
        ({"DESK_APPS": "prod,share"}, "DESK_APPS", "word of the slash command"),
        ({"DESK_APPS": "prod,prod"}, "DESK_APPS", "twice"),
        ({"DESK_APPS": "a" * 21}, "DESK_APPS", "not a valid app name"),
        (
            {"DESK_APPS": "prod,eu-west", "DESK_PROD_SDKAPPID": "7", "DESK_EU_WEST_SDKAPPID": "7"},
            "DESK_EU_WEST_SDKAPPID",
            "same SDKAppID as the prod app",
        ),
        (
            {"DESK_APPS": "prod", "DESK_PROD_SDKAPPID": "7", "DESK_SECRET_KEY": "", "DESK_PROD_USERSIG": ""},
            "DESK_PROD_SECRET_KEY",
            "neither is DESK_PROD_USERSIG",
        ),
        ({"DESK_APPS": "prod", "DESK_PROD_SDKAPPID": "7", "DESK_PROD_REGION": "mars"}, "DESK_PROD_REGION", "mars"),
        ({"DESK_APPS": "prod", "DESK_PROD_SDKAPPID": "7", "DESK_REGION": "mars"}, "DESK_REGION", "mars"),
    ],
)
def test_every_error_names_the_exact_variable(env: dict[str, str], variable: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"DESK_SECRET_KEY": "k" * 32, **env}, dotenv_path=None)
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ") and says in str(caught.value)
    assert "\n" not in str(caught.value)


def test_per_app_variables_fall_back_to_the_plain_ones() -> None:
    settings = load_settings(
        {
            "DESK_APPS": "prod,eu",
            "DESK_PROD_SDKAPPID": "1",
            "DESK_EU_SDKAPPID": "2",
            "DESK_SECRET_KEY": "shared-key-0123456789",
            "DESK_EU_SECRET_KEY": "eu-key-0123456789",
            "DESK_REGION": "singapore",
            "DESK_EU_REGION": "frankfurt",
            "DESK_TIMEOUT": "1.5",
        },
        dotenv_path=None,
    )
    prod, eu = settings.apps
    assert (prod.name, prod.region, prod.timeout, prod.secret_key.value if prod.secret_key else None) == (
        "prod",
        "singapore",
        1.5,
        "shared-key-0123456789",
    )
    assert (eu.region, eu.timeout, eu.secret_key.value if eu.secret_key else None) == (
        "frankfurt",
        1.5,
        "eu-key-0123456789",
    )
    assert "eu-key-0123456789" in settings.secrets() and "eu-key-0123456789" not in repr(settings)


def test_without_desk_apps_the_plain_variables_are_the_one_default_app() -> None:
    settings = load_settings({"DESK_SDKAPPID": "9", "DESK_SECRET_KEY": "k" * 20}, dotenv_path=None)
    (app,) = settings.apps
    assert (app.name, app.sdkappid, app.label) == ("default", 9, None)


# --- in Slack --------------------------------------------------------------------------------------


def test_each_app_reaches_only_its_own_emulator_with_its_own_usersig(
    bot: BotUnderTest, emulators: dict[str, DeskEmulator]
) -> None:
    staging = answer(bot, "staging")
    assert "Vietnamese" in texts(staging) and "Staging" in texts(staging) and str(STAGING) in texts(staging)
    assert [len(e.calls) for e in emulators.values()] == [0, 1, 0]
    prod = answer(bot, "")  # no name: the default app
    assert "Japanese" in texts(prod) and "Production (Singapore)" in texts(prod)
    assert [len(e.calls) for e in emulators.values()] == [1, 1, 0]
    # Each emulator checks the UserSig against its own key: a success is the proof.
    for emulator in emulators.values():
        assert all(call.outcome == 0 for call in emulator.calls)
        assert all(f"sdkappid={emulator.sdkappid}&" in call.raw_query for call in emulator.calls)


def test_a_misspelt_app_name_suggests_the_app_and_never_shows_the_default_list(
    bot: BotUnderTest, emulators: dict[str, DeskEmulator]
) -> None:
    reply = bot.command("stagin refresh")
    shown = texts(reply.answer)
    assert "Did you mean `staging`?" in shown
    assert "`prod`, `staging`, `eu`" in shown  # the list of apps
    assert "Japanese" not in shown
    assert all(e.calls == [] for e in emulators.values())


def test_apps_lists_every_app_from_its_own_cache_with_one_failing(
    bot: BotUnderTest, emulators: dict[str, DeskEmulator]
) -> None:
    emulators["eu"].inject(Fault(code=-50040), times=-1)  # Desk not enabled for the eu app
    shown = texts(answer(bot, "apps"))
    assert "Production (Singapore)" in shown and "3 languages · default English" in shown
    assert "Staging" in shown
    assert "`-50040`" in shown and "Enable Desk" in shown  # eu's error with its hint
    assert [len(e.calls) for e in emulators.values()][:2] == [1, 1]
    answer(bot, "apps")  # warm: prod and staging come from their caches
    assert [len(e.calls) for e in emulators.values()][:2] == [1, 1]


def test_apps_with_one_app_hanging_stays_within_its_time_budget(
    bot: BotUnderTest, emulators: dict[str, DeskEmulator]
) -> None:
    emulators["staging"].inject(Fault(hang=5.0), times=-1)
    reply = bot.command("apps")
    started = time.monotonic()
    shown = texts(bot.reply(reply.name, timeout=10))
    elapsed = time.monotonic() - started
    assert elapsed < 1.0 + 1.0 + 0.8  # DESK_TIMEOUT + 1 s budget (+ slack for a busy machine)
    assert "read-timeout" in shown and "Production (Singapore)" in shown
    assert [len(e.calls) for e in emulators.values()] == [1, len(emulators["staging"].calls), 1]


def test_compare_says_what_differs(bot: BotUnderTest, emulators: dict[str, DeskEmulator]) -> None:
    shown = texts(answer(bot, "compare prod staging"))
    assert "*Only in Production (Singapore):* Japanese (`ja`)" in shown
    assert "*Only in Staging:* Vietnamese (`vi`)" in shown
    assert "default" not in shown.split("*Only in Staging:*")[1].split("\n")[0].lower()


def test_compare_with_one_name_is_against_the_default_app_and_can_be_identical(bot: BotUnderTest) -> None:
    shown = texts(answer(bot, "compare eu"))
    assert "serve the same 3 languages, same default" in shown


def test_compare_shows_a_different_default(bot: BotUnderTest, emulators: dict[str, DeskEmulator]) -> None:
    emulators["eu"].set_languages([("ja", 1), ("en", 0), ("zh", 0)])
    shown = texts(answer(bot, "compare eu"))
    assert "*Different default:* English (`en`) in Production (Singapore), Japanese (`ja`) in eu" in shown


def test_compare_with_a_failing_side_says_so(bot: BotUnderTest, emulators: dict[str, DeskEmulator]) -> None:
    emulators["staging"].inject(Fault(code=70009), times=-1)
    shown = texts(answer(bot, "compare staging"))
    assert "Couldn't fetch Staging's languages" in shown and "`70009`" in shown


def test_compare_with_a_stale_side_says_how_old_it_is(bot: BotUnderTest, emulators: dict[str, DeskEmulator]) -> None:
    answer(bot, "compare staging")  # both lists known
    emulators["staging"].inject(Fault(http_status=502), times=-1)
    time.sleep(1.1)  # a refresh accepts a list fetched less than a second ago
    shown = texts(answer(bot, "staging refresh"))
    assert "stale list from" in shown
    shown = texts(answer(bot, "compare staging"))
    assert "Staging's side is the last good list" in shown


def test_a_button_acts_on_the_app_it_was_shown_for(bot: BotUnderTest, emulators: dict[str, DeskEmulator]) -> None:
    listing = answer(bot, "staging")
    (button,) = [
        e for block in listing["blocks"] if block["type"] == "actions" for e in block["elements"]
        if e["action_id"] == "desk_languages_refresh"
    ]
    assert button["value"] == "staging"
    name = bot.new_name("click")
    body = block_action_body(
        "desk_languages_refresh", response_url=bot.slack.response_url(name), value=button["value"]
    )
    before = [len(e.calls) for e in emulators.values()]
    time.sleep(1.1)  # a refresh accepts a list fetched less than a second ago
    assert bot.send(body, name).status == 200
    assert "Vietnamese" in texts(bot.reply(name))
    after = [len(e.calls) for e in emulators.values()]
    assert (after[0] - before[0], after[1] - before[1]) == (0, 1)


def test_a_refresh_storm_on_one_app_does_not_slow_another(
    bot: BotUnderTest, emulators: dict[str, DeskEmulator]
) -> None:
    answer(bot, "")  # prod warm
    storm = [threading.Thread(target=lambda: answer(bot, "staging refresh")) for _ in range(25)]
    for thread in storm:
        thread.start()
    started = time.monotonic()
    assert "Japanese" in texts(answer(bot, "refresh"))  # prod, fetched while staging's limiter is busy
    prod_seconds = time.monotonic() - started
    for thread in storm:
        thread.join(30)
    assert prod_seconds < 1.0
    assert emulators["staging"].max_calls_in_window(1.0) <= 5
    assert all(call.outcome == 0 for call in emulators["staging"].calls)  # no -14: its own limit held


# --- the command line ----------------------------------------------------------------------------


def run_cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=tmp_path, env=clean_env(**(env or {})),
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_cli_apps_and_languages_per_app(emulators: dict[str, DeskEmulator], tmp_path: Path) -> None:
    env = apps_env(emulators)
    listed = run_cli(tmp_path, "apps", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = listed.stdout.splitlines()
    assert rows[0].split()[:3] == ["APP", "LABEL", "SDKAPPID"]
    assert any(row.startswith("staging") and str(STAGING) in row for row in rows)
    staging = run_cli(tmp_path, "languages", "--app", "staging", "--json", env=env)
    assert staging.returncode == 0, staging.stderr
    assert '"tag": "vi"' in staging.stdout and f'"sdkappid": {STAGING}' in staging.stdout
    every = run_cli(tmp_path, "languages", "--all", env=env)
    assert every.returncode == 0 and every.stdout.count("DEFAULT") == 3
    unknown = run_cli(tmp_path, "languages", "--app", "stagin", env=env)
    assert unknown.returncode == 2 and "Did you mean 'staging'? The apps are prod, staging, eu." in unknown.stderr


def test_cli_exits_3_when_any_app_failed(emulators: dict[str, DeskEmulator], tmp_path: Path) -> None:
    emulators["eu"].stop()  # unreachable
    done = run_cli(tmp_path, "apps", env=apps_env(emulators))
    assert done.returncode == 3
    assert "error: eu:" in done.stderr and "Traceback" not in done.stderr
    assert any(row.startswith("prod") and "3" in row for row in done.stdout.splitlines())


@pytest.mark.e2e
def test_demo_shows_two_sandbox_apps_that_differ(tmp_path: Path) -> None:
    compared = run_cli(tmp_path, "demo", "compare")
    assert compared.returncode == 0, compared.stderr
    assert "Only in Production (sandbox)" in compared.stdout and "Only in Staging (sandbox)" in compared.stdout
    apps = run_cli(tmp_path, "demo", "apps")
    assert apps.returncode == 0 and "Staging (sandbox)" in apps.stdout and "4 languages" in apps.stdout
