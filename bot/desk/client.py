"""`DeskClient`: the one way the bot talks to a Desk chatbot.

`get_languages()` (and `readiness()`, the same way) layers, outermost first:
1. the cache (fresh for `DESK_CACHE_TTL`, one upstream call for all concurrent
   callers, the last good list served with a warning when Desk fails);
2. retries by the error's retry class (tenacity), bounded in attempts and in
   total time so an interactive Slack reply is never held long;
3. one attempt: a rate-limit permit of that API's own limiter (Tencent allows 5
   calls per second per API), then the HTTP call exactly as documented, falling
   over to the region's backup domain when the primary cannot be reached.

Every API (`bot/desk/apis.py`) goes through the same layers 2 and 3 (`_run`).
The writes (`add_language`, `remove_language`, `update_robot_settings`) are never
repeated after a lost answer (`bot/desk/writes.py`). `readiness()` checks every language's FAQ and
settings concurrently, each API under its own limiter (`bot/desk/readiness.py`).

The client knows nothing about Slack. It never logs or raises anything that
contains the request URL, because the URL carries the UserSig.
"""

from __future__ import annotations

import copy
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import quote

import requests
import urllib3.exceptions
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from bot import metrics
from bot.desk.apis import TENCENT_CALLS_PER_SECOND, Api
from bot.desk.cache import Cache, InProcessCache, LanguageCache, V
from bot.desk.errors import CATALOGUE, DeskError, RetryClass, TransportCode, transport_error
from bot.desk.limiter import WINDOW_MARGIN_MS, InProcessLimiter, RateLimiter
from bot.desk.models import LanguageList, decode_json, parse_envelope, read_envelope
from bot.desk.readiness import (
    BUILT_IN_RULES,
    DEFAULT_STATUS_TTL,
    FaqCount,
    ReadinessReport,
    ReadinessRules,
    RobotSettings,
    parse_faq_count,
    parse_robot_config,
)
from bot.desk.usersig import UserSigSource
from bot.desk.writes import (
    WriteAction,
    WriteOutcome,
    WriteStatus,
    outcome_after_lost_answer,
    write_may_have_run,
    write_may_repeat,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
Parse = Callable[[Any, float], T]  # (decoded answer, fetched_at) -> result; raises DeskError

API_PATH = Api.LANGUAGES.path
EMPTY_BODY = b"{}"
MAX_ATTEMPTS = 4
MIN_ATTEMPT_TIME = 0.25  # no attempt is started with less time than this left
REFRESH_COALESCE = 1.0  # a refresh accepts a list fetched less than this many seconds ago
COOL_DOWN = 60.0  # after 70050, Tencent locks the account for about a minute
READINESS_WORKERS = 8  # threads checking one report's languages at once
# A readiness check may wait this much longer than the usual budget for its API's permit: one
# report makes a call per language to each API, more than one window's worth for 6+ languages.
READINESS_QUEUE_WAIT = 5.0
# A single read before a write (a removal's FAQ count, a language's settings) may wait out one rate
# window for its permit: `plan` then `apply` spend a window's permits on the report just before.
SINGLE_READ_QUEUE_WAIT = (1000 + WINDOW_MARGIN_MS) / 1000


def readiness_time_limit(timeout: float) -> float:
    """The longest one readiness report can take to load with `timeout` per attempt: the list,
    then the checks (their queue for permits included). Other processes wait this long for it."""
    return 2 * (timeout + 1.0) + READINESS_QUEUE_WAIT


class DeskClient:
    def __init__(
        self,
        *,
        sdkappid: int,
        identifier: str,
        usersig: UserSigSource,
        base_urls: Sequence[str],
        limiter: RateLimiter,
        cache: LanguageCache,
        api_limiters: Mapping[Api, RateLimiter] | None = None,
        readiness_cache: Cache[ReadinessReport] | None = None,
        status_ttl: float = DEFAULT_STATUS_TTL,
        timeout: float = 2.0,
        stale_max: float = 86400.0,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        shared_state_health: Callable[[], str] | None = None,
        name: str = "default",
        observer: Callable[[LanguageList], None] | None = None,
        readiness_rules: ReadinessRules = BUILT_IN_RULES,
    ) -> None:
        if not base_urls:
            raise ValueError("at least one base URL is needed")
        self.sdkappid = sdkappid
        self.name = name  # the app's name in the configuration: the `app` label of its metrics
        self._identifier = identifier
        self._usersig = usersig
        self._base_urls = [url.rstrip("/") for url in base_urls]
        # `limiter` is robot_get_language_list's; every other API has its own budget at Tencent
        # (docs/desk-api.md §2), so its own limiter (in-process at Tencent's 5/s unless given).
        given = dict(api_limiters or {})
        self._limiters: dict[Api, RateLimiter] = {
            api: limiter
            if api is Api.LANGUAGES
            else given.get(api) or InProcessLimiter(TENCENT_CALLS_PER_SECOND)
            for api in Api
        }
        self._cache = cache
        # `status_ttl` is the freshness of a readiness report when no cache is given for them.
        self._readiness_cache: Cache[ReadinessReport] = readiness_cache or InProcessCache(
            ttl=status_ttl, stale_max=stale_max
        )
        self._timeout = timeout
        self._budget = timeout + 1.0  # total time for all attempts of one fetch
        self._stale_max = stale_max
        self._session = session or requests.Session()
        self._clock = clock
        self._sleep = sleep
        self._cool_down_until = 0.0
        self._shared_state_health = shared_state_health
        self._state_lock = threading.Lock()
        # Called with every list just fetched from Desk (not a cached, stale or failed one), in the
        # fetching thread: it must return at once. Settable after construction (the composition root).
        self.observer = observer
        # What `readiness()` judges the checks by (a team's declared requirements, or the built-in).
        self.readiness_rules = readiness_rules
        # What peek() and peek_readiness() last made of the value the cache held: while the cache
        # holds the same object, an ack gets the same view (no copy, no judging per ack), so a
        # caller may keep what it rendered from a view for as long as the view is handed out.
        self._peeked: tuple[object, LanguageList] | None = None
        self._peeked_readiness: tuple[object, ReadinessRules, ReadinessReport] | None = None

    # --- public --------------------------------------------------------------------------
    def get_languages(self, refresh: bool = False, max_age: float | None = None) -> LanguageList:
        """The chatbot's languages. Raises `DeskError` only when no usable list exists.

        When Desk fails but a list younger than `DESK_STALE_MAX` is known, that list is
        returned with `stale=True` and the error attached instead. `max_age` (seconds) takes
        a cached list only if fetched that recently (a poll that must see what Desk says now).
        """
        return self._through(self._cache, self._fetch_observed, refresh, "languages", max_age)

    def readiness(self, refresh: bool = False) -> ReadinessReport:
        """Whether each language (the default first) is ready to serve: its live FAQ questions and
        settings, checked concurrently. Cached like the list (fresh for `status_ttl`, shared by
        concurrent callers and through Redis, the last good report served stale when Desk fails);
        `refresh` also refreshes the list. Raises `DeskError` only when no usable report exists.
        Judged by `readiness_rules` (the cache holds the checks; the flags follow the rules).
        """
        report = self._through(self._readiness_cache, lambda: self._load_readiness(refresh), refresh, "readiness")
        return report.judged(self.readiness_rules)

    def peek_readiness(self) -> ReadinessReport | None:
        """The fresh cached readiness report, without any I/O, or None (for a Slack ack)."""
        held = self._readiness_cache.peek()
        if held is None:
            return None  # not counted: the lookup that follows (readiness()) is
        metrics.desk_cache_lookup(self.name, "readiness", "fresh")
        rules, last = self.readiness_rules, self._peeked_readiness
        if last is not None and last[0] is held and last[1] is rules:
            return last[2]
        view = held.as_cached().judged(rules)
        self._peeked_readiness = (held, rules, view)  # one assignment: racing acks at worst judge twice
        return view

    def _through(
        self, cache: Cache[V], load: Callable[[], V], refresh: bool, kind: str, max_age: float | None = None
    ) -> V:
        """A value through `cache`: fresh, loaded once for all concurrent callers, or stale-if-error.
        `kind` ("languages", "readiness") names it in logs and in the cache metric."""
        started = self._clock()
        newer_than = started - REFRESH_COALESCE if refresh else None if max_age is None else started - max_age
        result = cache.get(load, newer_than=newer_than)
        if not isinstance(result, DeskError):
            cached = result.fetched_at < started
            metrics.desk_cache_lookup(self.name, kind, "fresh" if cached else "miss")
            return result.as_cached() if cached else result
        last = cache.last_good()
        if last is not None and self._clock() - last.fetched_at <= self._stale_max:
            log.warning("Desk failed (%s); serving the last good %s", result, kind)
            metrics.desk_cache_lookup(self.name, kind, "stale")
            return last.as_stale(result)
        metrics.desk_cache_lookup(self.name, kind, "miss")
        raise copy.copy(result)  # a copy: the cached error is shared by concurrent callers

    def shared_state_health(self) -> str | None:
        """"ok"/"degraded" for the shared (Redis) limiter and cache; None when state is in-process."""
        return self._shared_state_health() if self._shared_state_health else None

    def peek(self) -> LanguageList | None:
        """The fresh cached list, without any I/O, or None: for answering inside a Slack ack."""
        held = self._cache.peek()
        if held is None:
            return None  # not counted: the lookup that follows (get_languages()) is
        metrics.desk_cache_lookup(self.name, "languages", "fresh")
        last = self._peeked
        if last is not None and last[0] is held:
            return last[1]
        view = held.as_cached()
        self._peeked = (held, view)
        return view

    def fetch(self) -> LanguageList:
        """One fetch from Desk, with retries, bypassing the cache. Raises `DeskError`."""
        return self._run(Api.LANGUAGES, EMPTY_BODY, _parse_languages)

    def _fetch_observed(self) -> LanguageList:
        """`fetch()`, then the list handed to the observer (whose failure never fails the fetch)."""
        listed = self.fetch()
        if self.observer is not None:
            try:
                self.observer(listed)
            except Exception as error:  # noqa: BLE001  the list is good whatever the observer does
                log.warning("the list observer failed (%s)", type(error).__name__)
        return listed

    # --- readiness (docs/desk-api.md §9) -------------------------------------------------
    def _load_readiness(self, refresh: bool) -> ReadinessReport:
        """Check every language of the (fresh) list; fails only when no check could be made."""
        listed = self.get_languages(refresh=refresh)
        if listed.stale and listed.error is not None:
            raise copy.copy(listed.error)  # a report is only built on a list Desk has just confirmed
        languages = listed.languages
        with ThreadPoolExecutor(
            max_workers=max(1, min(READINESS_WORKERS, 2 * len(languages))), thread_name_prefix="desk-readiness"
        ) as pool:
            checks = [
                (
                    pool.submit(self._check, Api.LIST_FAQ, faq_query(lang.tag), _parse_faq),
                    pool.submit(self._check, Api.ROBOT_CONFIG, {"LanguageTag": lang.tag}, _parse_config),
                )
                for lang in languages
            ]
            faq = [first.result() for first, _ in checks]
            config = [second.result() for _, second in checks]
        failures = [result for result in (*faq, *config) if isinstance(result, DeskError)]
        if languages and len(failures) == 2 * len(languages):
            raise failures[0]  # nothing could be checked: the last good report is worth more
        return ReadinessReport.build(languages, faq, config, self._clock())

    def _check(self, api: Api, body: dict[str, Any], parse: Parse[T]) -> T | DeskError:
        try:
            return self._run(api, json.dumps(body).encode(), parse, queue_wait=READINESS_QUEUE_WAIT)
        except DeskError as error:
            return error

    # --- writes (docs/desk-api.md §8) ----------------------------------------------------
    def add_language(self, tag: str) -> WriteOutcome:
        """Add the language `tag`, sent exactly as given (`suggest_tag()` maps what people type).

        Never raises for Desk's sake: a refusal is `NOT_APPLIED` with its `DeskError`. The call is
        repeated only when it certainly did not run (no connection, a rate-limit code); when its
        answer is lost, the list is read again and the outcome says what it shows
        (`bot/desk/writes.py`). After a write that may have run, the cached list is invalidated
        in every process and the outcome carries the list fetched afresh.
        """
        return self._write(Api.ADD_LANGUAGE, WriteAction.ADD, tag)

    def remove_language(self, tag: str) -> WriteOutcome:
        """Delete the language `tag` (the default language's tag may be ""): as `add_language`."""
        return self._write(Api.DEL_LANGUAGE, WriteAction.REMOVE, tag)

    def _write(self, api: Api, action: WriteAction, tag: str) -> WriteOutcome:
        body = json.dumps({"LanguageTag": tag}).encode()
        try:
            self._run(api, body, _parse_write, may_repeat=write_may_repeat)
        except DeskError as error:
            if not write_may_have_run(error):
                return WriteOutcome(action, tag, WriteStatus.NOT_APPLIED, error)
            log.warning("Desk's answer to %s %r was lost (%s); reading the list again", api.value, tag, error)
            languages, reread_error = self._read_after_write()
            outcome = outcome_after_lost_answer(action, tag, error, languages, reread_error)
            log.warning("%s %r after a lost answer: %s", api.value, tag, outcome.status.value)
            return outcome
        log.info("Desk %s %r done", api.value, tag)
        languages, reread_error = self._read_after_write()
        return WriteOutcome(action, tag, WriteStatus.APPLIED, languages=languages, reread_error=reread_error)

    def _read_after_write(self) -> tuple[LanguageList | None, DeskError | None]:
        """Invalidate the cached list (every process) and load it again, for all to share.

        Only a list fetched after this moment is taken (a load already in flight whose answer
        comes later is too: Desk may have answered it before the write took effect).
        """
        since = self._clock()
        self._cache.invalidate()
        self._readiness_cache.invalidate()  # a language more or less changes the report too
        result = self._cache.get(self._fetch_observed, newer_than=since)
        if isinstance(result, DeskError):
            return None, copy.copy(result)
        return result, None

    # --- one language's FAQ and chatbot settings (docs/desk-api.md §9, §12) -------------------
    def faq_count(self, tag: str) -> FaqCount:
        """The live FAQ questions of the language `tag` as Desk has them now: the readiness
        report's `list_faq` read (§9.1), made again every time (a check before a write must not
        trust a report cached up to `status_ttl` ago). Retried like any read; raises `DeskError`."""
        return self._run(Api.LIST_FAQ, json.dumps(faq_query(tag)).encode(), _parse_faq,
                         queue_wait=SINGLE_READ_QUEUE_WAIT)

    def robot_settings(self, tag: str) -> RobotSettings:
        """The chatbot's settings for the language `tag` ("" for the default) as Desk has them
        now (`desc_robot_config`), read from Desk every time (a read before a write must be
        fresh). Retried like any read; raises `DeskError`."""
        return self._run(Api.ROBOT_CONFIG, json.dumps({"LanguageTag": tag}).encode(), _parse_config,
                         queue_wait=SINGLE_READ_QUEUE_WAIT)

    def update_robot_settings(self, tag: str, settings: RobotSettings) -> str | None:
        """Write the whole of `settings` for the language `tag` (`update_robot_config`): every
        field, the ones kept verbatim included. Reading first and changing only what the person
        changed is the caller's job (docs/desk-api.md §12.2). Returns Desk's request id, if any.

        Sent under the API's own limiter and repeated only when it certainly did not run, as the
        language writes are (`write_may_repeat`). Raises `DeskError` on failure: a refusal (Desk's
        code, mapped through the catalogue) certainly changed nothing; after an ambiguous one (a
        read timeout, a reset, an HTTP 5xx, a garbled answer, a transient code) the write may
        have run, which `write_may_have_run(error)` tells, and it is never sent again: read the
        settings to learn what Desk has. The readiness report is invalidated in every process
        after any write that may have run.
        """
        body = json.dumps(settings.to_desk(tag)).encode()
        try:
            request_id = self._run(Api.UPDATE_ROBOT_CONFIG, body, _parse_write, may_repeat=write_may_repeat)
        except DeskError as error:
            if write_may_have_run(error):
                log.warning("Desk's answer to %s %r was lost (%s): in doubt", Api.UPDATE_ROBOT_CONFIG.value, tag, error)
                self._readiness_cache.invalidate()
            raise
        log.info("Desk %s %r done", Api.UPDATE_ROBOT_CONFIG.value, tag)
        self._readiness_cache.invalidate()  # the report shows these settings
        return request_id

    # --- one call, with retries ----------------------------------------------------------
    def _run(
        self,
        api: Api,
        body: bytes,
        parse: Parse[T],
        *,
        may_repeat: Callable[[DeskError], bool] | None = None,
        queue_wait: float = 0.0,
    ) -> T:
        """One call of `api`, retried by the error's class within the time budget. Raises `DeskError`.

        `may_repeat` narrows which failures are retried at all (a write: only those that certainly
        did not run). `queue_wait` is extra time this call may wait for its API's permit, on top of
        the budget, when many calls of one report are queued behind each other.
        """
        with self._state_lock:
            if self._clock() < self._cool_down_until:
                raise transport_error(TransportCode.COOL_DOWN)
        deadline = time.monotonic() + self._budget + queue_wait
        used_once: set[RetryClass] = set()  # classes that may be retried only once per fetch
        planned_wait = 0.0

        def should_retry(error: BaseException) -> bool:
            nonlocal planned_wait
            if not isinstance(error, DeskError):
                return False
            if may_repeat is not None and not may_repeat(error):
                return False
            planned_wait = self._backoff(error, len(used_once) + 1)
            # Only retry when a useful attempt still fits: after a read timeout, a whole one.
            needed = (
                self._timeout
                if error.code == TransportCode.READ_TIMEOUT
                else max(MIN_ATTEMPT_TIME, self._timeout / 2)
            )
            if time.monotonic() + planned_wait + needed > deadline:
                return False
            if error.retry in (RetryClass.RESIGN_ONCE, RetryClass.TRANSIENT_ONCE):
                if error.retry in used_once:
                    return False
                if error.retry is RetryClass.RESIGN_ONCE:
                    if not self._usersig.can_resign:
                        return False
                    self._usersig.invalidate()
                used_once.add(error.retry)
                return True
            return error.retry in (RetryClass.RATE_LIMITED, RetryClass.TRANSIENT)

        def wait(state: RetryCallState) -> float:
            return planned_wait

        retrying = Retrying(
            retry=retry_if_exception(should_retry),
            stop=stop_after_attempt(MAX_ATTEMPTS),
            wait=wait,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            result: T = retrying(self._attempt, api, body, parse, deadline, queue_wait)
        except DeskError as error:
            if error.retry is RetryClass.COOL_DOWN:
                with self._state_lock:
                    self._cool_down_until = self._clock() + COOL_DOWN
            log.warning("Desk call failed (%s): %s", api.value, error)
            raise
        return result

    # --- one attempt ---------------------------------------------------------------------
    def _backoff(self, error: DeskError, attempt: int) -> float:
        jitter = secrets.randbelow(1000) / 1000
        if error.retry is RetryClass.RATE_LIMITED:
            return 1.0 + 0.25 * jitter
        if error.retry is RetryClass.RESIGN_ONCE:
            return 0.0
        return min(0.1 * 2.0 ** (attempt - 1), 1.0) * (0.5 + jitter)

    def _attempt(self, api: Api, body: bytes, parse: Parse[T], deadline: float, queue_wait: float) -> T:
        last_error: DeskError | None = None
        for index, base_url in enumerate(self._base_urls):
            remaining = deadline - time.monotonic()
            if remaining < MIN_ATTEMPT_TIME / 2:
                break
            waiting = time.monotonic()
            permitted = self._limiters[api].acquire(timeout=min(remaining, self._timeout + queue_wait))
            metrics.desk_rate_wait(self.name, api.value, time.monotonic() - waiting)
            if not permitted:
                raise transport_error(TransportCode.LOCAL_RATE_LIMIT)
            started = time.monotonic()
            try:
                timeout = min(self._timeout, deadline - started)
                result = self._call(base_url, api, body, parse, timeout=timeout)
            except DeskError as error:
                metrics.desk_request(self.name, api.value, _outcome(error), time.monotonic() - started)
                # Only an unreachable primary is worth trying the backup domain for.
                if error.code != TransportCode.CONNECTION_FAILED or index == len(self._base_urls) - 1:
                    raise
                log.warning("Desk primary domain unreachable; trying the backup domain")
                last_error = error
            else:
                metrics.desk_request(self.name, api.value, "ok", time.monotonic() - started)
                return result
        raise last_error or transport_error(TransportCode.READ_TIMEOUT, "no time left for another attempt")

    def _call(self, base_url: str, api: Api, body: bytes, parse: Parse[T], *, timeout: float) -> T:
        url = (
            f"{base_url}{api.path}?sdkappid={self.sdkappid}&identifier={quote(self._identifier)}"
            # The sig's alphabet is URL-safe; percent-encoding its '*' may not be understood.
            f"&usersig={self._usersig.get()}&random={secrets.randbelow(2**32)}&contenttype=json"
        )
        timeout = max(timeout, 0.05)
        started = time.monotonic()
        try:
            response = self._session.post(
                url,
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=(min(timeout, 3.05), timeout),
            )
        except requests.exceptions.ConnectTimeout:
            raise transport_error(TransportCode.CONNECT_TIMEOUT) from None
        except requests.exceptions.ReadTimeout:
            raise transport_error(TransportCode.READ_TIMEOUT, f"no answer within {timeout:.1f} s") from None
        except requests.exceptions.SSLError:
            raise transport_error(TransportCode.TLS_ERROR) from None
        except requests.exceptions.RequestException as error:
            # from None, and only the type name: the original text contains the URL.
            kind = TransportCode.CONNECTION_FAILED if _never_sent(error) else TransportCode.CONNECTION_LOST
            raise transport_error(kind, type(error).__name__) from None
        elapsed_ms = (time.monotonic() - started) * 1000
        if response.status_code in (502, 503, 504):
            raise transport_error(TransportCode.HTTP_GATEWAY, f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise transport_error(TransportCode.HTTP_STATUS, f"HTTP {response.status_code}")
        result = parse(decode_json(response.content), self._clock())
        log.debug("Desk %s answered in %.0f ms (request id %s)", api.value, elapsed_ms, _request_id(result))
        return result


def _outcome(error: DeskError) -> str:
    """The `outcome` label of a failed attempt: its code, or "other" for a code not in the catalogue
    (Desk's answer chooses the code, so only known ones become label values)."""
    return str(error.code) if error.code in CATALOGUE else "other"


def _parse_languages(payload: Any, fetched_at: float) -> LanguageList:
    return parse_envelope(payload, fetched_at=fetched_at)


# One live standard question is enough: the count comes in StandardQuestionCount (§9.1).
FAQ_QUERY: dict[str, Any] = {"PageIndex": 1, "PageSize": 1, "Status": 4}


def faq_query(tag: str) -> dict[str, Any]:
    """The `list_faq` body counting the live questions of the language `tag` ("" for the default)."""
    return {**FAQ_QUERY, "LanguageTag": tag}


def _parse_faq(payload: Any, fetched_at: float) -> FaqCount:
    return parse_faq_count(payload)


def _parse_config(payload: Any, fetched_at: float) -> RobotSettings:
    return parse_robot_config(payload)


def _parse_write(payload: Any, fetched_at: float) -> str | None:
    """A write's answer is the bare envelope (docs/desk-api.md §8): its request id."""
    return read_envelope(payload)[1]


def _request_id(result: object) -> str | None:
    request_id = result if isinstance(result, str) else getattr(result, "request_id", None)
    return request_id if isinstance(request_id, str) else None


# Raised while the request is prepared, before any I/O.
_UNSENDABLE = (
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidHeader,
    requests.exceptions.URLRequired,
)


def _never_sent(error: requests.exceptions.RequestException) -> bool:
    """Whether a failed request certainly never left: no connection was made (DNS failure,
    refused), or the request could not even be built. A reset or an answer cut off after the
    request was sent is not such a failure: a write may have run (docs/desk-api.md §8)."""
    if isinstance(error, _UNSENDABLE):
        return True
    if not isinstance(error, requests.exceptions.ConnectionError):
        return False  # an answer cut off (ChunkedEncodingError, …), too many redirects, …
    seen: set[int] = set()
    pending: list[object] = [error]
    while pending:
        cause = pending.pop()
        if cause is None or id(cause) in seen:
            continue
        seen.add(id(cause))
        if isinstance(cause, urllib3.exceptions.NewConnectionError):  # NameResolutionError included
            return True
        if isinstance(cause, BaseException):
            pending += [*cause.args, getattr(cause, "reason", None), cause.__cause__, cause.__context__]
    return False
