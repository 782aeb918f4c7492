"""Configuration errors and the command line, run as a user would run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from bot.sandbox.desk_emulator import SANDBOX_KEY, SANDBOX_SDKAPPID, DeskEmulator, Fault

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("DESK_", "SLACK_", "DIGEST_", "REDIS_", "DATABASE_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd or ROOT,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "DESK_SDKAPPID"),
        ({"DESK_SDKAPPID": "12ab"}, "DESK_SDKAPPID"),
        ({"DESK_SDKAPPID": "1400000001"}, "DESK_SECRET_KEY"),
        ({"DESK_SANDBOX": "1", "DESK_REGION": "mars"}, "DESK_REGION"),
        ({"DESK_SANDBOX": "1", "DESK_TIMEOUT": "-1"}, "DESK_TIMEOUT"),
        ({"DESK_SANDBOX": "1", "DESK_RATE_LIMIT": "0"}, "DESK_RATE_LIMIT"),
        ({"DESK_SANDBOX": "maybe"}, "DESK_SANDBOX"),
        ({"DESK_SANDBOX": "1", "DESK_API_URL": "ftp://x"}, "DESK_API_URL"),
        ({"DESK_SANDBOX": "1", "DESK_IDENTIFIER": "bad id!"}, "DESK_IDENTIFIER"),
        ({"DESK_SANDBOX": "1", "LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"DESK_SANDBOX": "1", "DIGEST_DEFAULT_TZ": "Mars/Olympus"}, "DIGEST_DEFAULT_TZ"),
        ({"DESK_SANDBOX": "1", "DIGEST_CHANNEL": "C1"}, "DIGEST_SCHEDULE"),
        ({"DESK_SANDBOX": "1", "REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"DESK_SANDBOX": "1", "PORT": "99999"}, "PORT"),
        ({"DESK_SANDBOX": "1", "SOCKET_STALL_GRACE": "0"}, "SOCKET_STALL_GRACE"),
        ({"DESK_SANDBOX": "1", "SOCKET_STALL_CHECK": "soon"}, "SOCKET_STALL_CHECK"),
        ({"DESK_SANDBOX": "1", "SOCKET_PING_INTERVAL": "0.1"}, "SOCKET_PING_INTERVAL"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env, dotenv_path=None)
    assert caught.value.variable == variable
    assert str(caught.value).startswith(variable) and "Set" in str(caught.value)


def test_defaults_and_heroku_database_url() -> None:
    settings = load_settings({"DESK_SANDBOX": "1", "DATABASE_URL": "postgres://u:p@h:5432/d"}, dotenv_path=None)
    app = settings.apps[0]
    assert (app.identifier, app.region, app.timeout, app.cache_ttl) == (
        "administrator",
        "singapore",
        2.0,
        300.0,
    )
    assert (app.stale_max, app.rate_limit, settings.port) == (86400.0, 5, 3000)
    assert (settings.socket_ping_interval, settings.socket_stall_check, settings.socket_stall_grace) == (10, 10, 120)
    assert settings.database_url.value == "postgresql+psycopg://u:p@h:5432/d"


def test_secrets_never_show_in_the_settings_repr() -> None:
    settings = load_settings(
        {"DESK_SDKAPPID": "1", "DESK_SECRET_KEY": "k" * 40, "SLACK_BOT_TOKEN": "xoxb-abc"}, dotenv_path=None
    )
    assert "k" * 40 not in repr(settings) and "xoxb-abc" not in repr(settings)


@pytest.mark.e2e
def test_cli_config_error_is_one_line_exit_2_no_traceback() -> None:
    done = run_cli("languages", env={"DESK_TIMEOUT": "soon", "DESK_SANDBOX": "1"})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "DESK_TIMEOUT" in done.stderr
    assert "Traceback" not in done.stderr


# --- who may change languages: DESK_ADMINS and DESK_<APP>_ADMINS ------------------------------------
TWO_APPS = {"DESK_SANDBOX": "1", "DESK_APPS": "prod,staging", "DESK_ADMINS": "U0ADMIN"}


@pytest.mark.parametrize("blank", ["", "   ", ",", " , ,"])
def test_a_blank_app_admins_variable_is_an_error_naming_it(blank: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**TWO_APPS, "DESK_PROD_ADMINS": blank}, dotenv_path=None)
    said = str(caught.value)
    assert caught.value.variable == "DESK_PROD_ADMINS" and said.startswith("DESK_PROD_ADMINS: is set but blank")
    assert "none" in said and "unset it to use DESK_ADMINS" in said and "\n" not in said


@pytest.mark.parametrize("none", ["none", "NONE", " None "])
def test_none_turns_management_off_for_that_app_only(none: str) -> None:
    prod, staging = load_settings({**TWO_APPS, "DESK_PROD_ADMINS": none}, dotenv_path=None).apps
    assert (prod.admins, prod.admins_variable, prod.admins_off) == ((), "DESK_PROD_ADMINS", True)
    assert (staging.admins, staging.admins_variable, staging.admins_off) == (("U0ADMIN",), "DESK_ADMINS", False)


@pytest.mark.parametrize(("value", "off"), [("", False), (",", False), ("none", True)])
def test_a_blank_or_none_desk_admins_is_off_as_unset_is(value: str, off: bool) -> None:
    """DESK_ADMINS has nothing to inherit, so blank cannot widen who may: it stays unset, as .env.example has it."""
    for apps in ({}, {"DESK_APPS": "prod"}):
        (app,) = load_settings({"DESK_SANDBOX": "1", "DESK_ADMINS": value, **apps}, dotenv_path=None).apps
        assert (app.admins, app.admins_off) == ((), off)


@pytest.mark.e2e
def test_cli_blank_app_admins_is_one_line_exit_2_no_traceback() -> None:
    done = run_cli("languages", env={**TWO_APPS, "DESK_STAGING_ADMINS": " "})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "DESK_STAGING_ADMINS" in done.stderr and "none" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.e2e
def test_cli_reads_a_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DESK_SANDBOX=1\n")
    done = run_cli("languages", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["default"] == "en"


@pytest.mark.e2e
def test_cli_sandbox_table() -> None:
    done = run_cli("languages", env={"DESK_SANDBOX": "1"})
    assert done.returncode == 0, done.stderr
    assert "Vietnamese" in done.stdout and "5 languages; default: English (en)" in done.stdout


@pytest.mark.e2e
def test_cli_desk_failure_exits_3_with_the_hint() -> None:
    with DeskEmulator() as emu:
        emu.inject(Fault(code=-50040), times=-1)
        env = {"DESK_SDKAPPID": str(SANDBOX_SDKAPPID), "DESK_SECRET_KEY": SANDBOX_KEY, "DESK_API_URL": emu.base_url}
        done = run_cli("languages", env=env)
    assert done.returncode == 3
    assert "-50040" in done.stderr and "Enable Desk" in done.stderr
    assert "Traceback" not in done.stderr and SANDBOX_KEY not in done.stderr


# --- clear-text URLs ------------------------------------------------------------------------------
CLEAR_TEXT = [
    ("DESK_API_URL", "http://{host}:8080", "UserSig", "https://"),
    ("SLACK_API_URL", "http://{host}/api/", "Slack tokens", "https://"),
    ("REDIS_URL", "redis://:hunter2hunter2@{host}:6379/0", "password", "rediss://"),
]


@pytest.mark.parametrize("host", ["example.com", "10.0.0.1", "192.168.1.10", "[2001:db8::1]", "127.0.0.1.example.com"])
@pytest.mark.parametrize(("variable", "url", "carried", "secure"), CLEAR_TEXT)
def test_a_clear_text_url_to_another_machine_is_refused(
    variable: str, url: str, carried: str, secure: str, host: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"DESK_SANDBOX": "1", variable: url.format(host=host)}, dotenv_path=None)
    message = str(caught.value)
    assert caught.value.variable == variable and "\n" not in message
    assert message.startswith(f"{variable}: uses {url.split(':')[0]}:// to {host.strip('[]')}")
    assert f"{carried}" in message and "in clear" in message and f"Set it to a URL with {secure}" in message
    assert "hunter2hunter2" not in message


def held(variable: str, environ: dict[str, str]) -> str | None:
    settings = load_settings({"DESK_SANDBOX": "1", **environ}, dotenv_path=None)
    redis_url = settings.redis_url.value if settings.redis_url else None
    urls = {"DESK_API_URL": settings.apps[0].api_url, "SLACK_API_URL": settings.slack_api_url, "REDIS_URL": redis_url}
    return urls[variable]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "localhost", "[::1]"])
@pytest.mark.parametrize(("variable", "url", "carried", "secure"), CLEAR_TEXT)
def test_a_clear_text_url_to_this_machine_is_accepted(
    variable: str, url: str, carried: str, secure: str, host: str
) -> None:
    """Tests, the emulator and the fake Slack run on loopback over http."""
    assert held(variable, {variable: url.format(host=host)}) == url.format(host=host)


@pytest.mark.parametrize(("variable", "url", "carried", "secure"), CLEAR_TEXT)
def test_a_tls_url_to_another_machine_is_accepted(variable: str, url: str, carried: str, secure: str) -> None:
    tls = secure + url.format(host="example.com").split("://", 1)[1]
    assert held(variable, {variable: tls}) == tls


@pytest.mark.e2e
@pytest.mark.parametrize(("variable", "url"), [(v, u.format(host="example.com")) for v, u, _, _ in CLEAR_TEXT])
def test_cli_refuses_a_clear_text_url_in_one_line_exit_2(variable: str, url: str) -> None:
    done = run_cli("languages", env={"DESK_SANDBOX": "1", variable: url})
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and f" {variable}: uses " in done.stderr
    assert "Traceback" not in done.stderr and "hunter2hunter2" not in done.stderr
