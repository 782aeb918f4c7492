"""The composition root: everything one bot process runs, built from the settings, once.

Entry points (`serve`, `socket`, the WSGI module, `demo`, the CLI commands, the test
harness) only call the functions here. This is the one place that decides:
- where shared state lives (in process, or in Redis when REDIS_URL is set);
- whether Desk is Tencent or the embedded emulator (DESK_SANDBOX=1);
- which Slack checks run at boot (each once per process).

Boot order for a Slack-serving process: settings → logging → Desk app(s) → Slack
`WebClient` → listener dependencies → Bolt app (its `auth.test`) → background jobs.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from sqlalchemy.engine import Engine

from bot.changecontrol.declared import DeclaredState, load_declared
from bot.changecontrol.messages import declared_drift_line, drift_alert_line, drift_note
from bot.config import ConfigError, DeskAppSettings, Secret, Settings, load_settings
from bot.database import (
    DB_DOWN_ERRORS,
    DatabaseUnavailable,
    connect,
    ensure_current_schema,
    head_revision,
    migrate,
)
from bot.deps import BotDeps, DeskApp
from bot.desk import Api, DeskClient, InProcessCache, InProcessLimiter, LanguageCache, RateLimiter, UserSigSource
from bot.desk.cache import Cache
from bot.desk.client import readiness_time_limit
from bot.desk.readiness import READINESS, ReadinessReport
from bot.digests.service import DigestService, DigestSettings, posting_client
from bot.digests.store import DigestStore
from bot.digests.ticker import DigestTicker
from bot.logs import configure_logging
from bot.management.admins import AdminDirectory, AdminList
from bot.management.approvals import ApprovalPolicy
from bot.management.reconciler import ChangeReconciler
from bot.management.service import LanguageManager
from bot.management.settings_editor import SettingsEditor
from bot.management.store import ChangeStore
from bot.metrics import MetricsEndpoint
from bot.regions import REGIONS
from bot.sandbox.desk_emulator import SANDBOX_ADMINS, DeskEmulator, sample_for_app, sandbox_identity
from bot.slack.ack_shortcut import AckShortcut
from bot.slack.blocks import RenderContext
from bot.slack.bolt_app import build_slack_app
from bot.slack.edge import BotRSGI, BotWSGI, SlackEdge
from bot.slack.posting import SlackCallMeter
from bot.slack.response_url import ResponseSender
from bot.watch.service import WatchService
from bot.watch.store import WatchStore
from bot.watch.ticker import WatchTicker
from handlers.requests import RequestObserver

log = logging.getLogger(__name__)

API_CALL_TIMEOUT = 10  # seconds for one Slack Web API call


def load_configuration(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment and `.env`, with logging configured (and redacting)."""
    settings = load_settings(environ) if environ is not None else load_settings()
    configure_logging(settings.log_level, settings.secrets(), settings.log_format)
    return settings


# --- Desk ----------------------------------------------------------------------------------------

_sandbox_lock = threading.Lock()
_sandbox_urls: dict[int, str] = {}  # one emulator per app index and process


def resolve_sandbox(settings: Settings, app: DeskAppSettings, index: int = 0) -> DeskAppSettings:
    """With DESK_SANDBOX=1, start the app's embedded emulator (once per process) and point at it.
    Each app gets its own emulator, SDKAppID, key and sample list."""
    if not settings.sandbox:
        return app
    sdkappid, key = sandbox_identity(index)
    with _sandbox_lock:
        if index not in _sandbox_urls:
            emulator = DeskEmulator(sdkappid=sdkappid, key=key, languages=sample_for_app(index))
            _sandbox_urls[index] = emulator.start().base_url
    return replace(
        app, sdkappid=sdkappid, identifier=SANDBOX_ADMINS[0], secret_key=Secret(key), usersig=None,
        api_url=_sandbox_urls[index],
    )


def region_label(settings: Settings, app: DeskAppSettings) -> str:
    if settings.sandbox:
        return "sandbox (embedded Desk emulator)"
    if app.api_url:
        return f"custom URL ({REGIONS[app.region].label})"
    return REGIONS[app.region].label


def build_desk_client(
    settings: Settings,
    app: DeskAppSettings | None = None,
    *,
    limiter: RateLimiter | None = None,
    cache: LanguageCache | None = None,
) -> DeskClient:
    """The Desk client of `app` (default: the default app): the shared (Redis) limiter and cache
    when REDIS_URL is set, in-process ones otherwise; `limiter`/`cache` replace either (tests).
    Keys in Redis are per SDKAppID, so two bots sharing a Redis and an app share its limit."""
    index = settings.apps.index(app) if app is not None else 0
    app = resolve_sandbox(settings, app or settings.apps[0], index)
    assert app.sdkappid is not None  # load_settings requires it outside the sandbox
    usersig = UserSigSource(
        sdkappid=app.sdkappid,
        identifier=app.identifier,
        key=app.secret_key.value if app.secret_key else None,
        usersig=app.usersig.value if app.usersig else None,
    )
    base_urls = [app.api_url] if app.api_url else list(REGIONS[app.region].base_urls)
    shared_state_health: Callable[[], str] | None = None
    # Every other API has its own limit at Tencent, so its own limiter (docs/desk-api.md §2).
    other_apis = [api for api in Api if api is not Api.LANGUAGES]
    api_limiters: dict[Api, RateLimiter] = {api: InProcessLimiter(app.rate_limit) for api in other_apis}
    readiness_cache: Cache[ReadinessReport] | None = None  # None: the client's own, in process
    if settings.redis_url is not None and (limiter is None or cache is None):
        # Imported only with REDIS_URL: redis-py costs a process ~120 ms and a few MB to import.
        from bot.shared import RedisCache, RedisLimiter, connection_for

        connection = connection_for(settings.redis_url.value, tls_verify=settings.redis_tls_verify)
        if limiter is None:
            limiter = RedisLimiter(connection, sdkappid=app.sdkappid, calls_per_second=app.rate_limit)
            api_limiters = {
                api: RedisLimiter(connection, sdkappid=app.sdkappid, calls_per_second=app.rate_limit, api=api)
                for api in other_apis
            }
        if cache is None:
            cache = RedisCache(
                connection,
                sdkappid=app.sdkappid,
                ttl=app.cache_ttl,
                stale_max=app.stale_max,
                # Other processes wait about as long as the holder's fetch may take (its retry budget).
                wait=app.timeout + 1.5,
            )
            readiness_cache = RedisCache(
                connection,
                kind=READINESS,
                sdkappid=app.sdkappid,
                ttl=app.status_ttl,
                stale_max=app.stale_max,
                wait=readiness_time_limit(app.timeout) + 0.5,
            )
        shared_state_health = connection.status
    return DeskClient(
        sdkappid=app.sdkappid,
        identifier=app.identifier,
        usersig=usersig,
        base_urls=base_urls,
        limiter=limiter or InProcessLimiter(app.rate_limit),
        api_limiters=api_limiters,
        cache=cache or InProcessCache(ttl=app.cache_ttl, stale_max=app.stale_max),
        readiness_cache=readiness_cache,
        status_ttl=app.status_ttl,
        timeout=app.timeout,
        stale_max=app.stale_max,
        shared_state_health=shared_state_health,
        name=app.name,
    )


def build_desk_apps(settings: Settings, declared: DeclaredState | None = None) -> tuple[DeskApp, ...]:
    """Every Desk app this bot serves, the default first, each with its own client: its own
    UserSig, cache and rate limit (Tencent's 5 calls/s is per SDKAppID), and `status` judging by
    the declared state's requirements (read from its file unless given)."""
    several = len(settings.apps) > 1
    declared = declared or load_declared_state(settings)
    built = []
    for app in settings.apps:
        client = build_desk_client(settings, app)
        declared_app = declared.app(app.name) if declared is not None else None
        if declared_app is not None and declared_app.rules is not None:  # `status` judges by the team's rules
            client.readiness_rules = declared_app.rules
        render = RenderContext(
            sdkappid=client.sdkappid,
            region=region_label(settings, app),
            label=(app.label or app.name) if several else None,
            app=app.name if several else None,
        )
        built.append(DeskApp(name=app.name, client=client, render=render))
    return tuple(built)


def load_declared_state(settings: Settings) -> DeclaredState | None:
    """The declared state (DESK_STATE_FILE, or desk-languages.toml here), checked against the
    configured apps; None without a file. A mistake in it is a ConfigError: the bot does not start."""
    if settings.state_file is None:
        return None
    return load_declared(settings.state_file, [app.name for app in settings.apps])


# --- Slack ---------------------------------------------------------------------------------------


def build_web_client(settings: Settings) -> WebClient:
    """The process's Slack Web API client, retrying connection errors, 429 (Retry-After) and 5xx."""
    token = settings.slack_bot_token.value if settings.slack_bot_token else None
    client = WebClient(token=token, base_url=settings.slack_api_url, timeout=API_CALL_TIMEOUT)
    client.retry_handlers = [
        SlackCallMeter(),  # first: it sees every attempt, and never retries
        ConnectionErrorRetryHandler(max_retry_count=1),
        RateLimitErrorRetryHandler(max_retry_count=2),
        ServerErrorRetryHandler(max_retry_count=1),
    ]
    return client


def slack_boot_error(error: Exception, *, socket_token: bool = False) -> ConfigError:
    """The one-line configuration error for a token Slack refused at boot (auth.test, or
    apps.connections.open for Socket Mode's app-level token), or for Slack being unreachable."""
    if not isinstance(error, SlackApiError) and isinstance(error.__context__, SlackApiError):
        error = error.__context__  # Bolt's App() re-raises a refused auth.test as a BoltError
    if isinstance(error, SlackApiError):
        reason = error.response.get("error", "rejected") if error.response is not None else "rejected"
        if socket_token:
            return ConfigError(
                "SLACK_APP_TOKEN",
                f"was refused by Slack's apps.connections.open ({reason})",
                "Create an app-level token (xapp-…) with the connections:write scope on the app's "
                "Basic Information page.",
            )
        return ConfigError(
            "SLACK_BOT_TOKEN",
            f"was refused by Slack's auth.test ({reason})",
            "Copy the Bot User OAuth Token (xoxb-…) from the Slack app's OAuth & Permissions page.",
        )
    return ConfigError(
        "SLACK_API_URL",
        f"Slack could not be reached to check the token ({type(error).__name__})",
        "Check the network, or SLACK_API_URL if you set it.",
    )


def check_slack_token(settings: Settings) -> None:
    """One auth.test, so a bad token fails a boot that builds no Bolt app itself (a server's
    parent process, before it starts workers) with a one-line error."""
    try:
        build_web_client(settings).auth_test()
    except Exception as error:  # noqa: BLE001  refused, or Slack unreachable: both are config errors here
        raise slack_boot_error(error) from None


def check_app_token(settings: Settings) -> None:
    """Socket Mode's app-level token, checked once before anything starts: the SDK would
    otherwise log a refusal as an ERROR with a traceback-like dump and keep retrying."""
    assert settings.slack_app_token is not None
    token = settings.slack_app_token.value
    client = WebClient(token=token, base_url=settings.slack_api_url, timeout=API_CALL_TIMEOUT)
    try:
        client.apps_connections_open(app_token=token)
    except Exception as error:  # noqa: BLE001  refused, or Slack unreachable: both are config errors here
        raise slack_boot_error(error, socket_token=True) from None


# --- the database --------------------------------------------------------------------------------


def build_database(settings: Settings, apps: Sequence[DeskAppSettings | DeskApp]) -> Engine:
    """The engine every store shares, built once, with its schema checked: SQLite (the demo, tests,
    one machine) migrates itself; PostgreSQL must be current, else `SchemaBehind` (exit 2: run
    `python -m bot migrate`, Heroku's release phase). Rows of the unnamed app `default` are adopted
    by the default app once DESK_APPS names the apps. A database that cannot be reached does not
    stop the boot: the slash command serves, /healthz says digests are degraded, and the stores'
    work is retried by the tickers until it answers (its schema is checked at the next boot)."""
    engine = connect(settings.database_url.value)
    names = [app.name for app in apps]
    try:
        ensure_current_schema(engine, default_app=names[0])
        DigestStore(engine, names).adopt_unnamed_app()
    except DatabaseUnavailable as error:
        log.warning("%s The bot starts without it; its schema is checked at the next start.", error)
    return engine


def migrate_database(settings: Settings) -> tuple[str | None, str]:
    """`python -m bot migrate`: the schema brought to this version's, and the unnamed app's rows
    adopted (see build_database); (the revision before, the revision now)."""
    engine = connect(settings.database_url.value)
    names = [app.name for app in settings.apps]
    try:
        before = migrate(engine, default_app=names[0])
        DigestStore(engine, names).adopt_unnamed_app()
        return before, head_revision()
    finally:
        engine.dispose()


# --- digests -------------------------------------------------------------------------------------


def build_digest_service(
    settings: Settings, apps: Sequence[DeskApp], web_client: WebClient, engine: Engine,
    declared: DeclaredState | None = None,
) -> DigestService:
    """The digest service of every Desk app (`apps[0]` the default), on the bot's database; a
    digest carries one line on the declared state when there is one."""
    store = DigestStore(engine, apps=[app.name for app in apps])
    drift_of = None
    if declared is not None:
        state = declared

        def drift_of(app: str, report: ReadinessReport) -> str | None:
            return declared_drift_line(state, app, report)

    return DigestService(store, apps, web_client, DigestSettings.of(settings), drift_of=drift_of)


def start_digest_ticker(service: DigestService, settings: Settings) -> DigestTicker | None:
    """At boot of `serve`/`socket`: the ticker, which seeds DIGEST_CHANNEL once the database
    answers, unless DIGEST_TICKER=0. A database that is down does not stop the boot: the slash
    command serves, /healthz says digests are degraded, and the ticker keeps trying."""
    service.configured_schedule()  # a bad DIGEST_SCHEDULE is a configuration error, database or not
    if settings.digest_ticker:
        return DigestTicker(service).start()
    log.info("digest ticker off (DIGEST_TICKER=0); run `python -m bot digest --due` from a scheduler")
    try:
        service.seed_from_settings()
    except DB_DOWN_ERRORS as error:
        service.tick_failed(error)  # seeded by the next `digest --due` instead
    return None


# --- watch ---------------------------------------------------------------------------------------


def build_watch_service(
    settings: Settings, apps: Sequence[DeskApp], web_client: WebClient, engine: Engine,
    declared: DeclaredState | None = None,
) -> WatchService:
    """Change alerts of every Desk app, in the bot's database, saying when a change makes an app
    differ from its declared state or brings it back in sync."""
    return WatchService(
        WatchStore(engine), apps, web_client, interval=settings.watch_interval,
        who_changed=ChangeStore(engine).who_changed,
        drift_of_change=drift_alert_line(declared) if declared is not None else None,
    )


def observe_fetches(apps: Sequence[DeskApp], watch: WatchService) -> None:
    """Every list any fetch gets from Desk (a refresh, a digest, a change through the bot) goes to
    watch at once, not only the polls' (watch compares it on its own thread)."""
    for app in apps:
        app.client.observer = functools.partial(watch.notice, app.name)


def start_watch_ticker(service: WatchService, settings: Settings) -> WatchTicker | None:
    if settings.digest_ticker:
        return WatchTicker(service).start()
    log.info("watch ticker off (DIGEST_TICKER=0); run `python -m bot watch --due` from a scheduler")
    return None


# --- the whole bot -------------------------------------------------------------------------------


def build_language_manager(
    settings: Settings, apps: tuple[DeskApp, ...], web_client: WebClient, store: ChangeStore,
    declared: DeclaredState | None = None, *, clock: Callable[[], float] = time.time,
) -> LanguageManager:
    """Adding and removing languages: each app's admins (DESK_ADMINS or DESK_<APP>_ADMINS), the
    confirmations and audit in the database, audit lines to DESK_AUDIT_CHANNEL, and what a change
    does to the declared state said in its confirmation. `clock` dates requests and their expiry
    (tests move it instead of waiting out DESK_APPROVAL_TTL)."""
    admins = {app.name: AdminList(app.admins, app.admins_variable, app.admins_off) for app in settings.apps}
    return LanguageManager(
        apps,
        store,
        AdminDirectory(admins, web_client),
        posting_client(web_client),
        settings.audit_channel,
        declared_note=drift_note(declared) if declared is not None else None,
        approvals=approval_policy(settings),
        clock=clock,
    )


def approval_policy(settings: Settings) -> ApprovalPolicy:
    """Each app's DESK_<APP>_APPROVALS (or DESK_APPROVALS) and DESK_APPROVAL_TTL."""
    return ApprovalPolicy(
        required={app.name: app.approvals for app in settings.apps},
        variables={app.name: app.approvals_variable for app in settings.apps},
        ttl=settings.approval_ttl,
    )


def build_deps(settings: Settings, web_client: WebClient) -> BotDeps:
    declared = load_declared_state(settings)
    apps = build_desk_apps(settings, declared)
    engine = build_database(settings, apps)
    digests = build_digest_service(settings, apps, web_client, engine, declared)
    watch = build_watch_service(settings, apps, web_client, engine, declared)
    observe_fetches(apps, watch)
    manager = build_language_manager(settings, apps, web_client, ChangeStore(engine), declared)
    return BotDeps(
        settings=settings,
        apps=apps,
        responder=ResponseSender(settings.slack_api_url),
        digests=digests,
        manager=manager,
        watch=watch,
        settings_editor=SettingsEditor(manager, on_change=watch.settings_changed if watch is not None else None),
        declared=declared,
    )


@dataclass
class Bot:
    """One process's bot: its settings, Slack client, listener dependencies and Bolt app."""

    settings: Settings
    web_client: WebClient
    deps: BotDeps
    slack: App
    ticker: DigestTicker | None = None
    watch_ticker: WatchTicker | None = None
    reconciler: ChangeReconciler | None = None

    @cached_property
    def edge(self) -> SlackEdge:
        """The HTTP edge: Slack at POST /slack/events, health at GET /healthz, /metrics."""
        secret = self.settings.slack_signing_secret
        assert secret is not None  # build_bot(socket_mode=False) required it
        return SlackEdge(
            self.slack,
            self.deps,
            signing_secret=secret.value,
            body_timeout=self.settings.web_body_timeout,
            metrics_endpoint=self.metrics_endpoint,
            ack_shortcut=self.ack_shortcut,
        )

    @cached_property
    def ack_shortcut(self) -> AckShortcut | None:
        """The acks the edge answers without Bolt's dispatch, unless WEB_ACK_SHORTCUT=0 or at DEBUG
        (where Bolt's trace of every request is wanted): the same answers either way."""
        if not self.settings.web_ack_shortcut or self.settings.log_level == "DEBUG":
            return None
        return AckShortcut(self.deps, RequestObserver(self.deps.app_names, self.deps.default_app.name))

    @cached_property
    def wsgi(self) -> BotWSGI:
        """The edge for WSGI servers (`bot.wsgi:application`) and the in-process test server."""
        return BotWSGI(self.edge)

    @cached_property
    def rsgi(self) -> BotRSGI:
        """The edge for granian's RSGI interface: what `python -m bot serve` runs."""
        return BotRSGI(self.edge)

    @cached_property
    def metrics_endpoint(self) -> MetricsEndpoint:
        """GET /metrics: METRICS_TOKEN as a bearer token, or loopback only unless METRICS_PUBLIC=1."""
        token = self.settings.metrics_token
        return MetricsEndpoint(token.value if token else None, public=self.settings.metrics_public)

    def start_jobs(self) -> Bot:
        """Background work of a serving process: the digest and watch tickers and the reconciler of
        language changes (DIGEST_TICKER=1)."""
        if self.ticker is None and self.deps.digests is not None:
            self.ticker = start_digest_ticker(self.deps.digests, self.settings)
        if self.watch_ticker is None and self.deps.watch is not None:
            self.watch_ticker = start_watch_ticker(self.deps.watch, self.settings)
        if self.reconciler is None and self.deps.manager is not None and self.settings.digest_ticker:
            self.reconciler = ChangeReconciler(self.deps.manager).start()
        return self

    def stop_jobs(self) -> None:
        if self.ticker is not None:
            self.ticker.stop()
            self.ticker = None
        if self.watch_ticker is not None:
            self.watch_ticker.stop()
            self.watch_ticker = None
        if self.reconciler is not None:
            self.reconciler.stop()
            self.reconciler = None


def build_bot(settings: Settings, *, socket_mode: bool = False) -> Bot:
    """Everything a Slack-serving process needs. Raises `ConfigError` (one line) on bad config,
    a refused token included. Slack's `auth.test` runs once, in the Bolt app's construction."""
    if socket_mode:
        settings.require_slack_socket()
        check_app_token(settings)
    else:
        settings.require_slack_http()
    web_client = build_web_client(settings)
    deps = build_deps(settings, web_client)
    signing_secret = settings.slack_signing_secret.value if settings.slack_signing_secret else None
    try:
        slack = build_slack_app(deps, web_client, signing_secret=signing_secret)
    except Exception as error:  # noqa: BLE001  auth.test refused, or Slack unreachable
        raise slack_boot_error(error) from None
    return Bot(settings=settings, web_client=web_client, deps=deps, slack=slack)


def build_cli_manager(
    settings: Settings,
) -> tuple[LanguageManager, tuple[DeskApp, ...], WatchService | None]:
    """The language manager for `python -m bot add|remove` (no Bolt app; audit lines need a token),
    and, with a token, the watch service that alerts watching channels of the change at once
    (the caller waits for it before exiting: `wait_noticed`)."""
    declared = load_declared_state(settings)
    apps = build_desk_apps(settings, declared)
    web_client = build_web_client(settings)
    engine = build_database(settings, apps)
    store = ChangeStore(engine)
    manager = build_language_manager(settings, apps, web_client, store, declared)
    if settings.slack_bot_token is None:  # no token: the audit stays in the database
        manager = LanguageManager(apps, store, manager.admins, declared_note=manager.declared_note,
                                  approvals=manager.approvals)
        return manager, apps, None
    watch = build_watch_service(settings, apps, web_client, engine, declared)
    observe_fetches(apps, watch)
    return manager, apps, watch


def build_cli_digests(settings: Settings) -> DigestService:
    """The digest service for `python -m bot digest` (no Bolt app, no ticker)."""
    if settings.slack_bot_token is None:
        raise ConfigError("SLACK_BOT_TOKEN", "is not set", "Set it to the app's Bot User OAuth Token (xoxb-…).")
    declared = load_declared_state(settings)
    apps = build_desk_apps(settings, declared)
    return build_digest_service(settings, apps, build_web_client(settings), build_database(settings, apps), declared)


def build_cli_watch(settings: Settings) -> WatchService:
    """The watch service for `python -m bot watch --due` (no Bolt app, no ticker)."""
    if settings.slack_bot_token is None:
        raise ConfigError("SLACK_BOT_TOKEN", "is not set", "Set it to the app's Bot User OAuth Token (xoxb-…).")
    declared = load_declared_state(settings)
    apps = build_desk_apps(settings, declared)
    return build_watch_service(settings, apps, build_web_client(settings), build_database(settings, apps), declared)
