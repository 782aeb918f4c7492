"""`DeskClient`: the one way the bot reads a Desk chatbot's languages.

`get_languages()` layers, outermost first:
1. the cache (fresh for `DESK_CACHE_TTL`, one upstream call for all concurrent
   callers, the last good list served with a warning when Desk fails);
2. retries by the error's retry class (tenacity), bounded in attempts and in
   total time so an interactive Slack reply is never held long;
3. one attempt: a rate-limit permit, then the HTTP call exactly as documented,
   falling over to the region's backup domain when the primary cannot be reached.

The client knows nothing about Slack. It never logs or raises anything that
contains the request URL, because the URL carries the UserSig.
"""

from __future__ import annotations

import copy
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from urllib.parse import quote

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from bot.desk.cache import LanguageCache
from bot.desk.errors import DeskError, RetryClass, TransportCode, transport_error
from bot.desk.limiter import RateLimiter
from bot.desk.models import LanguageList, parse_body
from bot.desk.usersig import UserSigSource

log = logging.getLogger(__name__)

API_PATH = "/v4/openim_console_http_svc/robot_get_language_list"
MAX_ATTEMPTS = 4
MIN_ATTEMPT_TIME = 0.25  # no attempt is started with less time than this left
REFRESH_COALESCE = 1.0  # a refresh accepts a list fetched less than this many seconds ago
COOL_DOWN = 60.0  # after 70050, Tencent locks the account for about a minute


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
        timeout: float = 2.0,
        stale_max: float = 86400.0,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        shared_state_health: Callable[[], str] | None = None,
    ) -> None:
        if not base_urls:
            raise ValueError("at least one base URL is needed")
        self.sdkappid = sdkappid
        self._identifier = identifier
        self._usersig = usersig
        self._base_urls = [url.rstrip("/") for url in base_urls]
        self._limiter = limiter
        self._cache = cache
        self._timeout = timeout
        self._budget = timeout + 1.0  # total time for all attempts of one fetch
        self._stale_max = stale_max
        self._session = session or requests.Session()
        self._clock = clock
        self._sleep = sleep
        self._cool_down_until = 0.0
        self._shared_state_health = shared_state_health
        self._state_lock = threading.Lock()

    # --- public --------------------------------------------------------------------------
    def get_languages(self, refresh: bool = False) -> LanguageList:
        """The chatbot's languages. Raises `DeskError` only when no usable list exists.

        When Desk fails but a list younger than `DESK_STALE_MAX` is known, that list is
        returned with `stale=True` and the error attached instead.
        """
        started = self._clock()
        newer_than = started - REFRESH_COALESCE if refresh else None
        result = self._cache.get(self.fetch, newer_than=newer_than)
        if isinstance(result, LanguageList):
            if result.fetched_at < started:
                return replace(result, from_cache=True)
            return result
        last = self._cache.last_good()
        if last is not None and self._clock() - last.fetched_at <= self._stale_max:
            log.warning("Desk failed (%s); serving the last good list", result)
            return last.as_stale(result)
        raise copy.copy(result)  # a copy: the cached error is shared by concurrent callers

    def shared_state_health(self) -> str | None:
        """"ok"/"degraded" for the shared (Redis) limiter and cache; None when state is in-process."""
        return self._shared_state_health() if self._shared_state_health else None

    def peek(self) -> LanguageList | None:
        """The fresh cached list, without any I/O, or None: for answering inside a Slack ack."""
        held = self._cache.peek()
        return replace(held, from_cache=True) if held is not None else None

    def fetch(self) -> LanguageList:
        """One fetch from Desk, with retries, bypassing the cache. Raises `DeskError`."""
        with self._state_lock:
            if self._clock() < self._cool_down_until:
                raise transport_error(TransportCode.COOL_DOWN)
        deadline = time.monotonic() + self._budget
        used_once: set[RetryClass] = set()  # classes that may be retried only once per fetch
        planned_wait = 0.0

        def should_retry(error: BaseException) -> bool:
            nonlocal planned_wait
            if not isinstance(error, DeskError):
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
            result: LanguageList = retrying(self._attempt, deadline)
        except DeskError as error:
            if error.retry is RetryClass.COOL_DOWN:
                with self._state_lock:
                    self._cool_down_until = self._clock() + COOL_DOWN
            log.warning("Desk call failed: %s", error)
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

    def _attempt(self, deadline: float) -> LanguageList:
        last_error: DeskError | None = None
        for index, base_url in enumerate(self._base_urls):
            remaining = deadline - time.monotonic()
            if remaining < MIN_ATTEMPT_TIME / 2:
                break
            if not self._limiter.acquire(timeout=min(remaining, self._timeout)):
                raise transport_error(TransportCode.LOCAL_RATE_LIMIT)
            try:
                return self._call(base_url, timeout=min(self._timeout, deadline - time.monotonic()))
            except DeskError as error:
                # Only an unreachable primary is worth trying the backup domain for.
                if error.code != TransportCode.CONNECTION_FAILED or index == len(self._base_urls) - 1:
                    raise
                log.warning("Desk primary domain unreachable; trying the backup domain")
                last_error = error
        raise last_error or transport_error(TransportCode.READ_TIMEOUT, "no time left for another attempt")

    def _call(self, base_url: str, *, timeout: float) -> LanguageList:
        url = (
            f"{base_url}{API_PATH}?sdkappid={self.sdkappid}&identifier={quote(self._identifier)}"
            # The sig's alphabet is URL-safe; percent-encoding its '*' may not be understood.
            f"&usersig={self._usersig.get()}&random={secrets.randbelow(2**32)}&contenttype=json"
        )
        timeout = max(timeout, 0.05)
        started = time.monotonic()
        try:
            response = self._session.post(
                url,
                data=b"{}",
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
            raise transport_error(TransportCode.CONNECTION_FAILED, type(error).__name__) from None
        elapsed_ms = (time.monotonic() - started) * 1000
        if response.status_code in (502, 503, 504):
            raise transport_error(TransportCode.HTTP_GATEWAY, f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise transport_error(TransportCode.HTTP_STATUS, f"HTTP {response.status_code}")
        result = parse_body(response.content, fetched_at=self._clock())
        log.debug(
            "Desk answered in %.0f ms: %d languages (request id %s)",
            elapsed_ms,
            len(result.languages),
            result.request_id,
        )
        return result
