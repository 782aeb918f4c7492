"""DATABASE_URL is a secret: its password shows in no repr, no error and no log line."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Iterator

import pytest
from slack_sdk import WebClient

from bot.boot import build_desk_apps, build_digest_service
from bot.config import ConfigError, load_settings
from bot.database import DatabaseUnavailable, connect
from bot.digests.store import DigestStore
from bot.digests.ticker import DigestTicker
from bot.sandbox.desk_emulator import DeskEmulator
from tests.support.environment import make_settings
from tests.support.services import free_port
from tests.support.tiers import e2e_fixture

PASSWORD = "p@ss:w0rd/secret"
ENCODED = "p%40ss%3Aw0rd%2Fsecret"  # how it must be written in a URL
# No piece of the password, in either form, may show (not "secret" alone: settings have secret_key).
PIECES = ("p@ss", "ss:w0rd", "w0rd", "/secret", "p%40ss", "%3Aw0rd", "%2Fsecret")


def shows_a_piece(text: str) -> list[str]:
    return [piece for piece in PIECES if piece in text]


@e2e_fixture
def closed_port_url() -> str:
    """A PostgreSQL URL with that password, pointing at a loopback port nobody listens on."""
    return f"postgres://bot:{ENCODED}@127.0.0.1:{free_port()}/desk"


def test_the_settings_repr_has_no_password_and_redaction_knows_it(closed_port_url: str) -> None:
    settings = load_settings({"DESK_SANDBOX": "1", "DATABASE_URL": closed_port_url}, dotenv_path=None)
    assert shows_a_piece(repr(settings)) == [] and shows_a_piece(str(settings.database_url)) == []
    assert settings.database_url.value.startswith("postgresql+psycopg://bot:")
    assert {PASSWORD, ENCODED, settings.database_url.value} <= set(settings.secrets())


def test_the_default_sqlite_url_registers_nothing() -> None:
    settings = load_settings({"DESK_SANDBOX": "1"}, dotenv_path=None)
    assert settings.database_url.value == "sqlite:///desk-bot.db"
    assert not any("sqlite" in secret for secret in settings.secrets())


@pytest.mark.parametrize(
    "url",
    [
        f"postgres://bot:{PASSWORD}@127.0.0.1:5432/desk",  # SQLAlchemy: invalid literal for int(): 'w0rd'
        "postgres://bot:p@ss@127.0.0.1/desk",  # parses, with the host 'ss@127.0.0.1'
        "postgres://bot:p@ss/w0rd@127.0.0.1/desk",  # parses, with the database 'w0rd@127.0.0.1/desk'
    ],
)
def test_an_unencoded_password_is_refused_at_boot_without_echoing_it(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"DESK_SANDBOX": "1", "DATABASE_URL": url}, dotenv_path=None)
    assert caught.value.variable == "DATABASE_URL"
    assert shows_a_piece(str(caught.value)) == [] and "%40" in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def test_a_failed_connection_error_names_the_variable_and_host_only(closed_port_url: str) -> None:
    settings = load_settings({"DESK_SANDBOX": "1", "DATABASE_URL": closed_port_url}, dotenv_path=None)
    store = DigestStore(connect(settings.database_url.value))
    with pytest.raises(DatabaseUnavailable) as caught:
        store.get_subscription("C1", "default")
    text = str(caught.value)
    assert text.startswith("DATABASE_URL: could not connect to the postgresql database at 127.0.0.1:")
    assert "connection refused" in text
    assert caught.value.__cause__ is None and caught.value.__context__ is None  # the driver's error is gone
    assert shows_a_piece("".join(traceback.format_exception(caught.value))) == []
    store.engine.dispose()


@pytest.fixture
def ticker_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog


def test_a_failed_tick_logs_no_password(
    emulator: DeskEmulator, closed_port_url: str, ticker_logs: pytest.LogCaptureFixture
) -> None:
    """The real path: the digest ticker's tick fails on the database and says so in one line."""
    settings = make_settings(emulator, DATABASE_URL=closed_port_url)
    slack = WebClient(token="xoxb-not-used", base_url=f"http://127.0.0.1:{free_port()}/api/")
    service = build_digest_service(settings, build_desk_apps(settings), slack, connect(settings.database_url.value))
    ticker = DigestTicker(service, interval=0.05).start()
    try:
        for _ in range(200):
            if ticker.ticks >= 3:
                break
            time.sleep(0.025)
    finally:
        ticker.stop()
    assert service.health() == "degraded"
    failures = [record for record in ticker_logs.records if "digests unavailable" in record.getMessage()]
    assert len(failures) == 1, "one line per outage, however many ticks fail"
    assert not any(record.exc_info for record in ticker_logs.records)  # no traceback for a database that is down
    logged = ticker_logs.text
    assert "DATABASE_URL: could not connect" in logged
    assert shows_a_piece(logged) == []
    service.store.engine.dispose()
