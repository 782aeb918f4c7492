"""Configuration: one immutable `Settings` object, built once from the environment.

Everything the bot can be told comes through here. `load_settings()` reads the
process environment (after loading a `.env` file when one exists) and validates
every value up front, so a typo fails at start-up with one line that names the
variable and says what to set, instead of surfacing later as a confusing error.

Which variables are *required* depends on what is being run (a Slack token is
not needed to print the language list), so the checks for those live in the
`require_*` methods, called by the command that needs them.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Protocol, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.regions import REGIONS


class ConfigError(Exception):
    """A configuration value is missing or malformed. The message is one line for an operator."""

    def __init__(self, variable: str, problem: str, fix: str) -> None:
        self.variable = variable
        super().__init__(f"{variable}: {problem}. {fix}")


@dataclass(frozen=True)
class Secret:
    """A credential. Its repr never shows the value, so settings can be logged or printed safely."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('<redacted>')"

    __str__ = __repr__


TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


APP_NAME = re.compile(r"[a-z0-9-]{1,20}")
PRINCIPAL_ID_FORMAT = re.compile(r"[UWS][A-Z0-9]{2,20}")
CHANNEL_ID_FORMAT = re.compile(r"[CG][A-Z0-9]{2,20}")
STATE_FILE_NAME = "desk-languages.toml"  # the declared state, looked for in the working directory
DEFAULT_APP_NAME = "default"  # the one app of a bot without DESK_APPS
# Words of the slash command, which an app name may not be (`/desk-languages share` must stay an
# option). bot/slack/grammar.py's options are a subset; tests/test_config_cli.py keeps the two in step.
RESERVED_APP_NAMES = frozenset(
    {"share", "refresh", "default", "help", "digest", "apps", "compare", "add", "remove", "history",
     "status", "watch", "off", "all", "settings", "plan", "apply"}
)


class Named(Protocol):
    @property
    def name(self) -> str: ...


AppT = TypeVar("AppT", bound=Named)


class UnknownApp(ValueError):
    """A name that is not one of the configured Desk apps; the message lists them and suggests the
    closest one (a typo: `prdo` → did you mean `prod`?)."""

    def __init__(self, name: str, names: tuple[str, ...]) -> None:
        self.name = name
        close = difflib.get_close_matches(name, names, n=1)
        listed = ", ".join(names)
        self.fix = f"Did you mean {close[0]!r}? The apps are {listed}." if close else f"Use one of {listed}."
        super().__init__(f"{name!r} is not a configured Desk app. {self.fix}")


class DeskApps(Generic[AppT]):
    """The configured Desk apps (their settings, or what a layer above builds of them), in order: the
    first is the default app, which a command without an app name means. A lookup is strict: a
    name that is not configured is an `UnknownApp`, never quietly another app; a caller that has a
    reason to fall back (a button on a message older than the configuration) uses `get`."""

    def __init__(self, apps: Iterable[AppT]) -> None:
        self._apps: dict[str, AppT] = {}
        for app in apps:
            if app.name in self._apps:
                raise ValueError(f"two Desk apps have the same name: {app.name!r}")
            self._apps[app.name] = app
        if not self._apps:
            raise ValueError("at least one Desk app is needed")

    @property
    def default(self) -> AppT:
        return next(iter(self._apps.values()))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._apps)

    @property
    def several(self) -> bool:
        """More than one app: commands, replies and messages name the app only then."""
        return len(self._apps) > 1

    def app(self, name: str | None = None) -> AppT:
        """The app called `name`, the default app for None; `UnknownApp` for any other name."""
        if name is None:
            return self.default
        try:
            return self._apps[name]
        except KeyError:
            raise UnknownApp(name, self.names) from None

    def get(self, name: str | None) -> AppT | None:
        return self._apps.get(name) if name is not None else None

    def __contains__(self, name: object) -> bool:
        return name in self._apps

    def __iter__(self) -> Iterator[AppT]:
        return iter(self._apps.values())

    def __len__(self) -> int:
        return len(self._apps)


@dataclass(frozen=True)
class DeskAppSettings:
    """One Desk app's configuration: DESK_<APP>_* variables, each falling back to the plain DESK_*."""

    name: str
    sdkappid: int | None  # None with DESK_SANDBOX=1: the emulator's own is used
    identifier: str = "administrator"
    secret_key: Secret | None = None
    usersig: Secret | None = None
    region: str = "singapore"
    api_url: str | None = None
    timeout: float = 2.0
    cache_ttl: float = 300.0
    stale_max: float = 86400.0
    rate_limit: int = 5
    status_ttl: float = 900.0  # seconds a readiness report (`status`) stays fresh
    label: str | None = None  # how Slack shows the app, e.g. "Production (Singapore)"
    prefix: str = "DESK_"  # where its variables live: DESK_ or DESK_<APP>_
    # Who may add and remove languages: Slack user IDs (U…, W…) and user-group IDs (S…); empty
    # means management is off. `admins_variable` is where they were set (DESK_ADMINS or the app's);
    # `admins_off`: it says `none` (off on purpose). A blank DESK_<APP>_ADMINS is a ConfigError.
    admins: tuple[str, ...] = ()
    admins_variable: str = "DESK_ADMINS"
    admins_off: bool = False
    # DESK_APPROVALS / DESK_<APP>_APPROVALS: 1, one admin's confirmation; 2, a second admin approves
    # every write (docs/change-control.md, "Two-person approval"). `approvals_variable` set it.
    approvals: int = 1
    approvals_variable: str = "DESK_APPROVALS"


@dataclass(frozen=True)
class Settings:
    # --- Tencent Cloud Desk -------------------------------------------------------
    # Every app the bot serves, the default first. Without DESK_APPS: one app, `default`,
    # made of the plain DESK_* variables (which are also what per-app variables fall back to).
    apps: tuple[DeskAppSettings, ...]
    sandbox: bool = False
    log_level: str = "INFO"
    # --- Slack ------------------------------------------------------------------
    slack_bot_token: Secret | None = None
    slack_signing_secret: Secret | None = None
    slack_app_token: Secret | None = None
    slack_api_url: str = "https://slack.com/api/"
    port: int = 3000
    host: str | None = None  # bind address for `serve`; None = every address
    web_concurrency: int = 1
    web_access_log: bool = False
    web_ack_shortcut: bool = True  # WEB_ACK_SHORTCUT=0: every request through Bolt's dispatch (diagnosis)
    web_body_timeout: float = 10.0  # WEB_BODY_TIMEOUT: seconds a request body may take after its headers
    # Socket Mode (`python -m bot socket`): the SDK's ping interval, and the watchdog that ends a
    # process whose connection stayed down (bot/serve.py).
    socket_ping_interval: float = 10.0
    socket_stall_check: float = 10.0
    socket_stall_grace: float = 120.0
    # --- Monitoring ---------------------------------------------------------------
    log_format: str = "text"  # LOG_FORMAT: text, or json (one JSON object a line)
    metrics_token: Secret | None = None  # METRICS_TOKEN: /metrics wants `Authorization: Bearer` it
    metrics_public: bool = False  # METRICS_PUBLIC=1: /metrics without a token answers any address
    metrics_port: int | None = None  # METRICS_PORT: Socket Mode serves /metrics on this port
    # --- Digests ------------------------------------------------------------------
    database_url: Secret = Secret("sqlite:///desk-bot.db")  # a PostgreSQL URL carries a password
    digest_default_tz: str = "UTC"
    digest_channel: str | None = None
    digest_schedule: str | None = None
    digest_ticker: bool = True
    digest_grace: float = 6 * 3600.0
    watch_interval: float = 300.0  # DESK_WATCH_INTERVAL: seconds between two polls of an app for `watch`
    # --- Language management -------------------------------------------------------------
    audit_channel: str | None = None  # DESK_AUDIT_CHANNEL: one line per change reaching Desk
    approval_ttl: float = 86400.0  # DESK_APPROVAL_TTL: seconds a request waits for a second admin
    # --- Change control ---------------------------------------------------------------------------
    # DESK_STATE_FILE: the declared state (docs/change-control.md); unset: desk-languages.toml in the
    # working directory when there is one (blank is unset); `none`: no declared state even if there is.
    state_file: Path | None = None
    # --- Scaling out ----------------------------------------------------------------
    redis_url: Secret | None = None  # carries a password on most platforms
    redis_tls_verify: bool = True

    def secrets(self) -> list[str]:
        """Every secret value this configuration holds, for the log redaction filter."""
        held = [
            *(app.secret_key for app in self.apps),
            *(app.usersig for app in self.apps),
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.redis_url,
            self.metrics_token,
        ]
        return [s.value for s in held if s is not None and s.value] + _url_credentials(self.database_url.value)

    def require_slack_http(self) -> None:
        """Check what serving Slack over HTTP needs."""
        _require(self.slack_bot_token, "SLACK_BOT_TOKEN", "set it to the app's Bot User OAuth Token (xoxb-…)")
        _require(
            self.slack_signing_secret,
            "SLACK_SIGNING_SECRET",
            "set it to the Signing Secret from the Slack app's Basic Information page",
        )

    def require_slack_socket(self) -> None:
        """Check what serving Slack over Socket Mode needs."""
        _require(self.slack_bot_token, "SLACK_BOT_TOKEN", "set it to the app's Bot User OAuth Token (xoxb-…)")
        _require(
            self.slack_app_token,
            "SLACK_APP_TOKEN",
            "set it to an app-level token (xapp-…) with the connections:write scope",
        )


def _is_loopback(host: str | None) -> bool:
    """Whether `host` (as `urlsplit(...).hostname` gives it) is this machine: localhost, 127.0.0.0/8, ::1."""
    import ipaddress

    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def _refuse_clear_text(name: str, url: str, clear: str, secure: str, what: str) -> None:
    """Refuse a `clear` (http, redis) URL unless it goes to this machine (tests, the emulator)."""
    from urllib.parse import urlsplit

    if not url.lower().startswith(f"{clear}://"):
        return
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    if not _is_loopback(host):
        raise ConfigError(
            name,
            f"uses {clear}:// to {host or 'a host'}, which is not this machine, so {what} would travel in clear",
            f"Set it to a URL with {secure}:// ({clear}:// is accepted only for 127.0.0.1, ::1 or localhost).",
        )


def _url_credentials(url: str) -> list[str]:
    """The password of `scheme://user:password@host/…` as written and decoded, and the URL itself;
    nothing for a URL without one. Up to the last `@`, so an unencoded `@` in it is kept whole."""
    from urllib.parse import unquote

    userinfo = url.partition("://")[2].rpartition("@")[0]
    password = userinfo.partition(":")[2]
    return [url, password, unquote(password)] if password else []


def _check_database_url(url: str) -> None:
    """Parse DATABASE_URL as SQLAlchemy will, so a mistake fails at boot without echoing it:
    its own errors repeat the URL's pieces (`invalid literal for int(): 'w0rd'`)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    fix = "Set it to the URL your platform gives; in a password, write @ as %40, : as %3A and / as %2F."
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        parsed = None  # raised below, outside this block: the error's text must not even be its context
    if parsed is None:
        raise ConfigError("DATABASE_URL", "could not be read as a URL (its value is not shown)", fix)
    if parsed.drivername.startswith("postgresql") and "@" in f"{parsed.host}{parsed.database}":
        raise ConfigError("DATABASE_URL", "has an @ after its user and password (an unencoded @ in the password?)", fix)


def _require(value: Secret | None, name: str, fix: str) -> None:
    if value is None or not value.value:
        raise ConfigError(name, "is not set", fix[0].upper() + fix[1:] + ".")


def load_settings(
    environ: Mapping[str, str] | None = None, *, dotenv_path: str | Path | None = ".env"
) -> Settings:
    """Build the settings from `environ` (default: the process environment plus `.env`)."""
    if environ is None:
        if dotenv_path is not None and Path(dotenv_path).is_file():
            from dotenv import load_dotenv

            load_dotenv(dotenv_path, override=False)  # the real environment wins
        environ = os.environ
    return _Reader(environ).settings()


class _Reader:
    """Parses and validates one variable at a time, naming it in every error."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.env = environ

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def text(self, name: str, default: str) -> str:
        return self.raw(name) or default

    def secret(self, name: str) -> Secret | None:
        value = self.raw(name)
        return Secret(value) if value else None

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        word = value.lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ConfigError(name, f"{value!r} is not a yes/no value", "Set it to 1 or 0.")

    def number(self, name: str, default: float, *, minimum: float, maximum: float) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not (minimum <= number <= maximum):  # also rejects NaN
            raise ConfigError(
                name,
                f"{value!r} is not a number of seconds between {minimum:g} and {maximum:g}",
                f"Set it to a number such as {default:g}.",
            )
        return number

    def integer(self, name: str, default: int | None, *, minimum: int, maximum: int) -> int | None:
        value = self.raw(name)
        if value is None:
            return default
        if not re.fullmatch(r"\d+", value) or not (minimum <= int(value) <= maximum):
            raise ConfigError(
                name,
                f"{value!r} is not a whole number between {minimum} and {maximum}",
                "Set it to a whole number" + (f" such as {default}." if default is not None else "."),
            )
        return int(value)

    def desk_app(self, name: str, prefix: str, *, sandbox: bool, fallback: bool) -> DeskAppSettings:
        """One app's Desk settings from `prefix` variables (DESK_ or DESK_<APP>_); with `fallback`,
        a variable that is not set there is read from the plain DESK_ one (SDKAPPID excepted)."""

        def var(key: str) -> str:
            own = f"{prefix}{key}"
            if fallback and key != "SDKAPPID" and self.raw(own) is None and self.raw(f"DESK_{key}") is not None:
                return f"DESK_{key}"
            return own

        sdkappid = self.integer(var("SDKAPPID"), None, minimum=1, maximum=2**32 - 1)
        secret_key, usersig = self.secret(var("SECRET_KEY")), self.secret(var("USERSIG"))
        # With the sandbox, the emulator brings its own credentials; real ones are neither needed nor sent.
        if not sandbox:
            if sdkappid is None:
                where = f"the {name} app" if fallback else "the app"
                raise ConfigError(
                    var("SDKAPPID"),
                    "is not set",
                    f"Set it to the SDKAppID of {where}, shown in the Chat console, or set DESK_SANDBOX=1 "
                    "to try the bot against the embedded Desk emulator.",
                )
            if secret_key is None and usersig is None:
                raise ConfigError(
                    var("SECRET_KEY"),
                    f"is not set, and neither is {var('USERSIG')}",
                    f"Set {var('SECRET_KEY')} to the app's key from the Chat console "
                    f"(or {var('USERSIG')} to a pre-generated UserSig for {var('IDENTIFIER')}).",
                )

        identifier = self.text(var("IDENTIFIER"), "administrator")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", identifier):
            raise ConfigError(
                var("IDENTIFIER"),
                f"{identifier!r} is not a valid UserID (1-32 letters, digits, _ or -)",
                "Set it to an App admin account from the Chat console, e.g. administrator.",
            )

        region = self.text(var("REGION"), "singapore").lower()
        if region not in REGIONS:
            raise ConfigError(
                var("REGION"),
                f"{region!r} is not a known region",
                "Set it to one of " + ", ".join(REGIONS) + f" (or set {var('API_URL')}).",
            )

        api_url = self.raw(var("API_URL"))
        if api_url is not None and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", api_url):
            raise ConfigError(
                var("API_URL"),
                f"{api_url!r} is not an http(s) base URL",
                "Set it to a base URL such as https://adminapisgp.my-imcloud.com, or unset it.",
            )
        if api_url is not None:
            _refuse_clear_text(var("API_URL"), api_url, "http", "https", "the UserSig in every request")
        label = self.raw(var("LABEL")) if fallback else None
        if label is not None and len(label) > 80:
            raise ConfigError(var("LABEL"), "is longer than 80 characters", "Shorten it, e.g. Production (Singapore).")
        rate_limit = self.integer(var("RATE_LIMIT"), 5, minimum=1, maximum=1000)
        assert rate_limit is not None
        own_admins = f"{prefix}ADMINS"
        if fallback and own_admins in self.env and not self.env[own_admins].replace(",", "").strip():
            # Blank would read as unset and inherit DESK_ADMINS: more admins than whoever blanked it meant.
            raise ConfigError(
                own_admins,
                f"is set but blank (it neither names the {name} app's admins nor falls back to DESK_ADMINS)",
                f"Set it to the Slack user or user-group IDs who may change the {name} app's languages, "
                "to none to turn that off for the app, or unset it to use DESK_ADMINS.",
            )
        admins_variable = var("ADMINS")
        admins_value = self.raw(admins_variable) or ""
        admins_off = admins_value.lower() == "none"  # management turned off on purpose
        admins = () if admins_off else tuple(item.strip() for item in admins_value.split(",") if item.strip())
        for item in admins:
            if not PRINCIPAL_ID_FORMAT.fullmatch(item):
                raise ConfigError(
                    admins_variable,
                    f"{item[:30]!r} is not a Slack user ID (U…, W…) or user-group ID (S…)",
                    "List IDs such as U0123ABCD or S0123ABCD, separated by commas (a user's ID is in their "
                    "Slack profile → ⋮ → Copy member ID).",
                )
        approvals = self.integer(var("APPROVALS"), 1, minimum=1, maximum=2)
        assert approvals is not None
        return DeskAppSettings(
            name=name,
            sdkappid=sdkappid,
            identifier=identifier,
            secret_key=secret_key,
            usersig=usersig,
            region=region,
            api_url=api_url.rstrip("/") if api_url else None,
            timeout=self.number(var("TIMEOUT"), 2.0, minimum=0.05, maximum=60),
            cache_ttl=self.number(var("CACHE_TTL"), 300.0, minimum=0, maximum=7 * 86400),
            stale_max=self.number(var("STALE_MAX"), 86400.0, minimum=0, maximum=30 * 86400),
            rate_limit=rate_limit,
            status_ttl=self.number(var("STATUS_TTL"), 900.0, minimum=0, maximum=7 * 86400),
            label=label,
            prefix=prefix,
            admins=admins,
            admins_variable=admins_variable,
            admins_off=admins_off,
            approvals=approvals,
            approvals_variable=var("APPROVALS"),
        )

    def desk_apps(self, sandbox: bool) -> tuple[DeskAppSettings, ...]:
        """DESK_APPS' apps in order (the first is the default), or the one `default` app."""
        listed = self.raw("DESK_APPS")
        if listed is None:
            return (self.desk_app(DEFAULT_APP_NAME, "DESK_", sandbox=sandbox, fallback=False),)
        names = [name.strip() for name in listed.split(",") if name.strip()]
        if not names:
            raise ConfigError("DESK_APPS", "names no app", "Set it to app names such as prod,staging, or unset it.")
        for index, name in enumerate(names):  # every name first, so a bad one is named before any app's variables
            if not APP_NAME.fullmatch(name):
                raise ConfigError(
                    "DESK_APPS",
                    f"{name[:40]!r} is not a valid app name (lower-case letters, digits and -, up to 20 characters)",
                    "Use names such as prod, staging or eu-west.",
                )
            if name in RESERVED_APP_NAMES:
                raise ConfigError(
                    "DESK_APPS",
                    f"{name!r} is a word of the slash command, so it cannot name an app",
                    "Pick another name, such as prod or staging.",
                )
            if name in names[:index]:
                raise ConfigError("DESK_APPS", f"names {name!r} twice", "List each app once.")
        apps: list[DeskAppSettings] = []
        for name in names:
            app = self.desk_app(name, f"DESK_{name.upper().replace('-', '_')}_", sandbox=sandbox, fallback=True)
            twin = next((other for other in apps if app.sdkappid is not None and other.sdkappid == app.sdkappid), None)
            if twin is not None:
                raise ConfigError(
                    f"{app.prefix}SDKAPPID",
                    f"is {app.sdkappid}, the same SDKAppID as the {twin.name} app",
                    "Give each app its own SDKAppID (one app listed twice would share, and halve, its rate limit).",
                )
            apps.append(app)
        return tuple(apps)

    def settings(self) -> Settings:
        sandbox = self.boolean("DESK_SANDBOX", False)
        apps = self.desk_apps(sandbox)

        log_level = self.text("LOG_LEVEL", "INFO").upper()
        if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ConfigError(
                "LOG_LEVEL", f"{log_level!r} is not a log level", "Set it to DEBUG, INFO, WARNING or ERROR."
            )

        slack_api_url = self.text("SLACK_API_URL", "https://slack.com/api/")
        if not re.fullmatch(r"https?://\S+", slack_api_url):
            raise ConfigError(
                "SLACK_API_URL",
                f"{slack_api_url!r} is not an http(s) URL",
                "Set it to https://slack.com/api/ (the default) or your Slack API base URL.",
            )
        _refuse_clear_text("SLACK_API_URL", slack_api_url, "http", "https", "the Slack tokens")
        if not slack_api_url.endswith("/"):
            slack_api_url += "/"

        database_url = self.text("DATABASE_URL", "sqlite:///desk-bot.db")
        if database_url.startswith("postgres://"):  # Heroku's form; SQLAlchemy wants a dialect
            database_url = "postgresql+psycopg://" + database_url[len("postgres://") :]
        elif database_url.startswith("postgresql://"):
            database_url = "postgresql+psycopg://" + database_url[len("postgresql://") :]
        if not re.fullmatch(r"(sqlite|postgresql\+psycopg)://\S*", database_url):
            raise ConfigError(
                "DATABASE_URL",
                "is neither a sqlite:/// nor a postgres:// URL",
                "Set it to sqlite:///desk-bot.db or to your PostgreSQL URL.",
            )
        if self.raw("DATABASE_URL") is not None:
            _check_database_url(database_url)

        default_tz = self.text("DIGEST_DEFAULT_TZ", "UTC")
        try:
            ZoneInfo(default_tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                "DIGEST_DEFAULT_TZ",
                f"{default_tz!r} is not an IANA time zone",
                "Set it to a zone such as UTC or Europe/Berlin.",
            ) from None

        digest_channel = self.raw("DIGEST_CHANNEL")
        digest_schedule = self.raw("DIGEST_SCHEDULE")
        if (digest_channel is None) != (digest_schedule is None):
            missing = "DIGEST_SCHEDULE" if digest_schedule is None else "DIGEST_CHANNEL"
            raise ConfigError(
                missing,
                "is not set, but its partner is",
                "Set both DIGEST_CHANNEL (e.g. C0123456789) and DIGEST_SCHEDULE "
                "(e.g. 'weekdays 09:00 Europe/Berlin'), or neither.",
            )

        audit_channel = self.raw("DESK_AUDIT_CHANNEL")
        if audit_channel is not None and not CHANNEL_ID_FORMAT.fullmatch(audit_channel):
            raise ConfigError(
                "DESK_AUDIT_CHANNEL",
                f"{audit_channel[:30]!r} is not a Slack channel ID",
                "Set it to a channel's ID such as C0123ABCD (channel details → About), and invite the bot there.",
            )

        two_person = next((app for app in apps if app.approvals == 2), None)
        if two_person is not None and audit_channel is None:
            raise ConfigError(
                two_person.approvals_variable,
                "is 2, but DESK_AUDIT_CHANNEL is not set (requests for approval are posted there)",
                "Set DESK_AUDIT_CHANNEL to the channel ID where admins approve (e.g. C0123ABCD), or set "
                f"{two_person.approvals_variable} to 1.",
            )

        redis_url = self.secret("REDIS_URL")
        if redis_url is not None and not re.fullmatch(r"rediss?://\S+", redis_url.value):
            raise ConfigError(
                "REDIS_URL",
                "is not a redis:// or rediss:// URL",
                "Set it to the URL your platform's Redis add-on provides, or unset it.",
            )
        if redis_url is not None:
            _refuse_clear_text("REDIS_URL", redis_url.value, "redis", "rediss", "its password and the cached data")

        state_file = self.state_file()
        port = self.integer("PORT", 3000, minimum=1, maximum=65535)
        host = self.raw("HOST")
        if host is not None and not re.fullmatch(r"[A-Za-z0-9.:-]+", host.strip("[]")):
            raise ConfigError(
                "HOST", f"{host!r} is not an address to bind", "Set it to an address such as 127.0.0.1, or unset it."
            )
        web_concurrency = self.integer("WEB_CONCURRENCY", 1, minimum=1, maximum=64)
        log_format = self.text("LOG_FORMAT", "text").lower()
        if log_format not in {"text", "json"}:
            raise ConfigError("LOG_FORMAT", f"{log_format[:20]!r} is not a log format", "Set it to text or json.")
        assert port is not None and web_concurrency is not None

        return Settings(
            apps=apps,
            sandbox=sandbox,
            log_level=log_level,
            slack_bot_token=self.secret("SLACK_BOT_TOKEN"),
            slack_signing_secret=self.secret("SLACK_SIGNING_SECRET"),
            slack_app_token=self.secret("SLACK_APP_TOKEN"),
            slack_api_url=slack_api_url,
            port=port,
            host=host.strip("[]") if host else None,
            web_concurrency=web_concurrency,
            web_access_log=self.boolean("WEB_ACCESS_LOG", False),
            web_ack_shortcut=self.boolean("WEB_ACK_SHORTCUT", True),
            web_body_timeout=self.number("WEB_BODY_TIMEOUT", 10.0, minimum=0.5, maximum=60),
            socket_ping_interval=self.number("SOCKET_PING_INTERVAL", 10.0, minimum=0.5, maximum=300),
            socket_stall_check=self.number("SOCKET_STALL_CHECK", 10.0, minimum=0.1, maximum=300),
            socket_stall_grace=self.number("SOCKET_STALL_GRACE", 120.0, minimum=1, maximum=3600),
            log_format=log_format,
            metrics_token=self.secret("METRICS_TOKEN"),
            metrics_public=self.boolean("METRICS_PUBLIC", False),
            metrics_port=self.integer("METRICS_PORT", None, minimum=1, maximum=65535),
            database_url=Secret(database_url),
            digest_default_tz=default_tz,
            digest_channel=digest_channel,
            digest_schedule=digest_schedule,
            digest_ticker=self.boolean("DIGEST_TICKER", True),
            digest_grace=self.number("DIGEST_GRACE", 6 * 3600.0, minimum=60, maximum=7 * 86400),
            watch_interval=self.number("DESK_WATCH_INTERVAL", 300.0, minimum=10, maximum=86400),
            redis_url=redis_url,
            redis_tls_verify=self.boolean("REDIS_TLS_VERIFY", True),
            audit_channel=audit_channel,
            approval_ttl=self.number("DESK_APPROVAL_TTL", 86400.0, minimum=60, maximum=30 * 86400),
            state_file=state_file,
        )

    def state_file(self) -> Path | None:
        """DESK_STATE_FILE, which must name a file; unset, desk-languages.toml here if there is one."""
        named = self.raw("DESK_STATE_FILE")
        if named is None:
            here = Path(STATE_FILE_NAME)
            return here if here.is_file() else None
        if named.lower() == "none":
            return None
        path = Path(named)
        if not path.is_file():
            raise ConfigError(
                "DESK_STATE_FILE",
                f"{named[:200]!r} is not a file",
                "Set it to the path of the declared state (a desk-languages.toml), or to none, or unset it.",
            )
        return path
