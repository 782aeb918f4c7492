"""Benchmark 6, soak: every capability over two Desk apps and two bot processes while faults are injected at random.

What runs: two Desk emulators (`prod`, the default sample trimmed to 4 languages, and
`staging`, each its own process and SDKAppID), one redis-server and one PostgreSQL
started here, FakeSlack with its Socket Mode server, and the bot processes of
`bot_processes()`: two HTTP `python -m bot serve` and one `python -m bot socket`
(`socket_processes()`), sharing Redis and PostgreSQL. The first HTTP process and the Socket
Mode one tick (DIGEST_TICKER on, DESK_WATCH_INTERVAL=10 s), so watch and digests stay
exactly-once across processes; the second HTTP one, the one killed, does not (below). A few
channels watch each app (signed `watch` commands at the start, one of them a channel
the bot was removed from: every post there answers `not_in_channel`); in the full run
a digest falls due mid-run.

The mix, over both apps, spread in turn over three routes (the two HTTP processes and the
Socket Mode connection, so a slice of every kind of command and click goes through each): list, `share` and the
Share button, refresh, default, `apps`, `compare`, `status`, `status refresh`, help,
unknown words, a non-admin's add/remove (refused, nothing sent), an admin's add/remove
then Confirm — sometimes two Confirm clicks at once to two routes, sometimes
Cancel then Confirm (must not apply) — and watch / watch off in a throwaway channel.
A console thread changes the lists at the emulators directly now and then, so that
watch alerts fire. One HTTP process is SIGKILLed mid-run and restarted.

Change control beside them, as CI runs it: once before the mix and every 30 s in it (12 s in
the smoke run), the soak writes a desk-languages.toml declaring staging as Desk has it with
one language (`ja`, which only apply touches) added or removed, then runs, each as its own
process on the same database and Redis with no Slack token, `python -m bot plan --json`,
`python -m bot apply --app staging --yes` (staging is under two-person approval: refused,
exit 2, one line) and the same with `--approved-by` a second admin (applied, or refused while a
request waits in Slack, or stopped by a Desk fault). They come to Desk as an admin of their
own (DESK_<APP>_IDENTIFIER), so the emulators tell their calls from the servers'.

Faults, at random: Desk (every retry class of error code, a hang past DESK_TIMEOUT,
HTTP 502, a truncated body; any call, or one API: the list, add, remove, list_faq,
desc_robot_config) and Slack (500 on a response_url, the next only once the bot's retries
of the last are over; 429 with Retry-After on chat.postMessage; `not_in_channel` for the
removed channel).

About the killed process. The /metrics totals must agree exactly with the soak's counts,
but a SIGKILLed process's counters die with it (Prometheus sees a counter reset), and a Desk
call cannot be told apart by process at the emulator. So the victim is quiet when it dies: it
runs with its tickers off (DIGEST_TICKER=0, which stops watch too); mid-run the soak stops
routing new requests to it, waits until every request it was given is acknowledged and
answered and its counters are still, scrapes its /metrics (its first life's totals), then
SIGKILLs it while the rest of the traffic goes on over the other routes, restarts it and
routes to it again. A crash in the middle of work (a claimed alert or digest, a write being
applied) is covered by the multiprocess tests (tests/test_digest_multiprocess.py,
tests/test_watch.py), where exactly-once is checked without counters to reconcile. A command
or click whose connection is refused anyway never reached the bot, so sending it again cannot
answer it twice: it goes to another route, as a router would, counted once as re-sent. One cut
mid-request, or acknowledged but never answered, would be counted as cut by the kill (Slack
would have shown that user an error), outside the exactly-once figures.

Counted and targets: every request acknowledged within 3 s and answered exactly once;
every confirmed write sent to Desk at most once per confirmation (double clicks give
one write; Cancel then Confirm none), every write recorded in the audit; apply without
--approved-by refused in one line and writing nothing, plan writing nothing, and apply's writes
each made once, only by a run naming the second admin, audited as apply:<user> with them; every watch
event alerted exactly once in every channel that watched the app, none in the removed
channel, whose watch stops, and the watch state caught up with the emulators at the
end; zero HTTP 5xx; zero tracebacks in any process log; the digest posted once; and, once
all traffic is answered, the /metrics totals of every process life (`metrics_agreement()`)
equal to the soak's own counts: requests by route and kind, Desk calls by app and API, watch
alerts and digests posted, chat.postMessage attempts.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from bench.figures import Options, keep_log, main_for, print_table, print_targets, spread_ms, target
from bench.load import CommandClient, Sent, SocketClient, deliveries, message_text, wait_for_answers
from bench.processes import (
    EmulatorProcess,
    ServerProcess,
    bot_environment,
    fake_slack,
    release_phase,
    tracebacks,
    workspace,
)
from bot.database import ClaimState, connect
from bot.desk.apis import Api
from bot.management.messages import APPROVE_ACTION, CANCEL_ACTION, CONFIRM_ACTION, REJECT_ACTION, UNWRITTEN
from bot.management.store import audit_table, requests_table
from bot.sandbox.desk_emulator import ADD, CONFIG, DELETE, FAQ, LIST
from bot.sandbox.slack_emulator import SANDBOX_USER_ID, FakeSlack, StepExecution
from bot.slack.blocks import PROGRESS, SHARE_ACTION
from bot.slack.steps import CHECK_READINESS, GET_LANGUAGES, REQUEST_CHANGE, manifest_functions
from bot.watch.service import EVENT_TYPE
from bot.watch.store import WatchStore
from tests.support.environment import pg_tool
from tests.support.services import PostgresServer, RedisServer

NAME = "soak"
DESK_TIMEOUT = 2.0
CACHE_TTL = 3
WATCH_INTERVAL = 10
APPS = ("prod", "staging")
VICTIM = 1  # the index in bot_processes() of the HTTP process killed and restarted
ADMIN, GUEST = SANDBOX_USER_ID, "U0SOAKGUEST"
SECOND_ADMIN = "U0SOAKSECOND"  # approves (or rejects) the requests of the app under two-person approval
STEP_ASKER = "U0SOAKASKER"  # who a workflow's change requests come from (not an admin)
TWO_PERSON = "staging"  # DESK_STAGING_APPROVALS=2: every write waits for SECOND_ADMIN
# Change control: `python -m bot plan --json` and `apply --app staging` as processes of their own,
# as CI runs them (no Slack token). They come to Desk as another admin (DESK_<APP>_IDENTIFIER), so
# the emulators tell their calls from the servers' (which /metrics counts, and theirs not).
CHANGE_CONTROL = "change_control"
APPLY_TAG = "ja"  # staging's language that only apply adds and removes (its FAQ emptied: removable)
APPROVAL_TTL = 60  # seconds: a request nobody decides expires within the full run
AUDIT_CHANNEL, DIGEST_CHANNEL = "C0SOAKAUDIT", "C0SOAKDIGEST"
GONE = "C0WATCHGONE"  # watches prod, but the bot was removed from it: every post answers not_in_channel
WATCHERS = {"prod": ("C0WATCHPROD1", "C0WATCHPROD2", GONE), "staging": ("C0WATCHSTG1", "C0WATCHSTG2")}
TOGGLED = "C0SOAKTOGGLE"  # watch / watch off in the mix: its alerts come and go, checked only for duplicates
PROD_START = [("en", 1), ("zh", 0), ("zh-TW", 0), ("ja", 0)]  # room under the bot's limit of 5 for vi and fil
WRITE_TAG = {"prod": "vi", "staging": "zh"}  # what admins add and remove through the bot
CONSOLE_TAG = {"prod": "fil", "staging": "id"}  # what the console thread adds and removes
MIX: tuple[tuple[str, int], ...] = (
    ("list", 9), ("refresh", 2), ("share", 1), ("share click", 2), ("default", 1), ("apps", 2), ("compare", 2),
    ("status", 2), ("status refresh", 1), ("help", 1), ("unknown", 1), ("guest change", 2), ("admin change", 5),
    ("watch toggle", 1), ("workflow step", 2), ("workflow change request", 1),
)
DESK_FAULTS: tuple[dict[str, Any], ...] = (  # one Desk call each; codes by retry class
    {"code": -14}, {"code": 60008}, {"code": 70500}, {"code": 141002}, {"code": 70001}, {"code": 60004},
    {"hang": DESK_TIMEOUT + 1.0}, {"http_status": 502}, {"truncated": True},
    {"api": LIST, "code": 70500}, {"api": ADD, "http_status": 502}, {"api": ADD, "truncated": True},
    {"api": DELETE, "code": 70500}, {"api": DELETE, "hang": DESK_TIMEOUT + 1.0}, {"api": FAQ, "truncated": True},
    {"api": FAQ, "code": 60008}, {"api": CONFIG, "http_status": 502}, {"api": CONFIG, "hang": DESK_TIMEOUT + 1.0},
)
TICK_S = 0.25
DESK_FAULT_EVERY_S = 3.0  # on average, over both apps
SLACK_500_EVERY_S = 2.0
# A response_url 500 is one fault for one post: the next is armed only once the bot's retries of
# the post that met the last one are over (about 4.5 s: 0.5, 1 and 2.5 s apart). Armed sooner, a
# quiet moment lets one post meet four in a row, a longer Slack outage than the soak means to play.
SLACK_500_SPACING_S = 5.0
SLACK_429_EVERY_S = 6.0
_ERROR_CODE = re.compile(r"\*Error\* `([^`]+)`")


# --- the bot processes ---------------------------------------------------------------------------


@dataclass
class BotProcess:
    """One bot process under test and the client that reaches it the way Slack would."""

    name: str
    kind: str  # "http" (Slack POSTs to /slack/events) or "socket" (envelopes over Socket Mode)
    server: ServerProcess  # its port serves /metrics (Socket Mode: METRICS_PORT)
    client: CommandClient | SocketClient
    down: threading.Event = field(default_factory=threading.Event)
    draining: threading.Event = field(default_factory=threading.Event)  # given no new requests
    in_flight: int = 0  # requests sent to it and not yet acknowledged (under Run.lock)

    def log_text(self) -> str:
        return self.server.log_text()

    def scrape(self) -> str:
        """The text of its /metrics (loopback needs no token)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=5)
        try:
            connection.request("GET", "/metrics")
            response = connection.getresponse()
            body = response.read().decode()
        finally:
            connection.close()
        if response.status != 200:
            raise RuntimeError(f"GET /metrics on {self.name}: HTTP {response.status}")
        return body


def bot_processes(env: dict[str, str], work: Path, fake: FakeSlack) -> list[BotProcess]:
    """The processes the mix is spread over: two HTTP servers, then `socket_processes()`. The
    second is the one killed (`VICTIM`): its tickers are off (DIGEST_TICKER=0 stops digests and
    watch alike), so it is quiet once its requests are answered."""
    started = []
    for index in (1, 2):
        server = ServerProcess({**env, "DIGEST_TICKER": "0"} if index == VICTIM + 1 else env, work)
        server.launch()
        started.append(BotProcess(f"http-{index}", "http", server, CommandClient(server.port, fake)))
    for process in started:
        process.server.wait_ready()
    return started + socket_processes(env, work, fake)


def socket_processes(env: dict[str, str], work: Path, fake: FakeSlack) -> list[BotProcess]:
    """One `python -m bot socket` beside the HTTP servers: the same `env` (both apps, Redis,
    PostgreSQL, admins, watch, digests, its tickers on), SLACK_APP_TOKEN so that
    `apps.connections.open` hands it FakeSlack's loopback Socket Mode URL, and /metrics on
    METRICS_PORT. Ready once /metrics answers and its connection is open."""
    server = ServerProcess({**env, "SLACK_APP_TOKEN": fake.app_token}, work, [sys.executable, "-m", "bot", "socket"])
    server.env["METRICS_PORT"] = str(server.port)
    server.start()  # its metrics server answers /healthz with 404: up
    if not fake.socket.wait_connections(1, timeout=30):
        server.stop()
        raise RuntimeError(f"python -m bot socket did not connect:\n{server.log_tail()}")
    return [BotProcess("socket", "socket", server, SocketClient(fake))]


# --- one step of the mix --------------------------------------------------------------------------


@dataclass
class Step:
    """One request (a command or a click) of the mix, where it went, and what it was for."""

    scenario: str
    sent: Sent
    process: str
    kind: str  # "command" or "block_actions", as slack_requests_total's `kind` label
    resent: bool = False  # refused by a process that was down, then sent to another
    cut: bool = False  # cut by the kill, or acknowledged by the killed process and never answered
    execution: str = ""  # a Workflow Builder step's function_execution_id: it must end once, not be answered


@dataclass
class Intent:
    """An admin's change through the bot: the confirmation it got and what was clicked."""

    app: str
    action: str
    tag: str
    request_id: str = ""
    # confirm | double | cancel-confirm; under two-person approval (TWO_PERSON) the requester's
    # Confirm, then: approve | double approve | self approve (refused, then rejected) | reject |
    # guest approve (refused, then left to expire); "" = refused before any confirmation
    variant: str = ""
    answer: str = ""
    held: bool = False  # two-person: the Confirm made it the app's request waiting for approval


@dataclass
class CliRun:
    """One `python -m bot plan|apply` the soak ran, and what it said (stderr without log lines)."""

    command: str  # "plan" or "apply"
    approved: bool  # apply with --approved-by SECOND_ADMIN
    started: float  # wall clock, like the emulators' call times
    ended: float
    exit: int
    said: list[str]
    out: str


@dataclass
class Run:
    processes: list[BotProcess]
    emulators: dict[str, EmulatorProcess]
    fake: FakeSlack
    chooser: random.Random
    steps: list[Step] = field(default_factory=list)
    intents: list[Intent] = field(default_factory=list)
    console: list[dict[str, Any]] = field(default_factory=list)
    kill: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    toggled_on: bool = False
    store: WatchStore | None = None  # the shared watch tables (PostgreSQL)
    setup: list[Step] = field(default_factory=list)  # the watch commands before the mix
    first_life: list[str] = field(default_factory=list)  # the victim's /metrics just before its kill
    cli_runs: list[CliRun] = field(default_factory=list)  # plan and apply, one process each, in turn

    def record(self, step: Step) -> Step:
        with self.lock:
            self.steps.append(step)
        return step

    def send(self, index: int, scenario: str, fn: Callable[[Any], Sent], kind: str) -> Step:
        """Send through route `index` (in turn, skipping a process given no new requests); a
        refused connection never reached the bot, so another route takes it, counted once."""
        process = self._take(index)
        began = time.time()
        sent = self._through(process, fn)
        step = Step(scenario, sent, process.name, kind)
        if sent.status == 0 and sent.error == "ConnectionRefusedError":
            other = self._take(index + 1, besides=process)
            step = Step(scenario, self._through(other, fn), other.name, kind, resent=True)
        elif sent.status == 0 and (process.down.is_set() or began <= self.kill.get("at", -1) <= time.time()):
            step.cut = True
        return self.record(step)

    def _take(self, index: int, besides: BotProcess | None = None) -> BotProcess:
        """The route for request `index`, counted in flight at once (under the lock, so a
        process set draining is never handed a request after its drain began)."""
        count = len(self.processes)
        with self.lock:
            for offset in range(count):
                process = self.processes[(index + offset) % count]
                if process is not besides and not (process.draining.is_set() or process.down.is_set()):
                    process.in_flight += 1
                    return process
        raise RuntimeError("no bot process takes requests")

    def _through(self, process: BotProcess, fn: Callable[[Any], Sent]) -> Sent:
        try:
            return fn(process.client)
        finally:
            with self.lock:
                process.in_flight -= 1


def _app_prefix(app: str) -> str:
    return "" if app == APPS[0] else f"{app} "


def _wait_answer(fake: FakeSlack, sent: Sent, timeout: float = 20.0) -> dict[str, Any] | None:
    """The message a request was answered with: in its ack, or its first accepted response_url post."""
    if sent.answered_in_ack and PROGRESS.encode() not in sent.body:
        return _json(sent.body)
    if sent.status != 200:
        return None
    if not wait_for_answers(fake, {sent.name}, timeout=timeout):
        return None
    return next(c.body for c in fake.responses(sent.name) if 200 <= c.status < 300)


def _button_value(message: dict[str, Any] | None, action_id: str) -> str | None:
    for block in (message or {}).get("blocks") or []:
        for element in block.get("elements") or []:
            if element.get("action_id") == action_id:
                return str(element.get("value") or "")
    return None


def scenario(run: Run, index: int, name: str) -> None:
    """Run one scenario of the mix (one or more requests)."""
    app = run.chooser.choice(APPS)
    pre = _app_prefix(app)
    words = {
        "list": pre, "refresh": f"{pre}refresh", "share": f"{pre}share", "default": f"{pre}default",
        "apps": "apps", "compare": "compare", "status": f"{pre}status", "status refresh": f"{pre}status refresh",
        "help": "help", "unknown": f"{pre}lsit",
    }
    if name in words:
        run.send(index, name, lambda c: c.send(words[name]), "command")
    elif name == "share click":
        first = run.send(index, name, lambda c: c.send(pre), "command")
        if _wait_answer(run.fake, first.sent) is not None:  # the click comes on the message shown
            run.send(index + 1, name, lambda c: c.click(SHARE_ACTION, app if pre else "share"), "block_actions")
    elif name == "guest change":
        tag = WRITE_TAG[app]
        verb = "remove" if tag in dict(run.emulators[app].languages()) else "add"
        run.send(index, name, lambda c: c.send(f"{pre}{verb} {tag}", user_id=GUEST), "command")
    elif name == "admin change":
        _admin_change(run, index, app)
    elif name == "workflow step":
        callback_id = run.chooser.choice((GET_LANGUAGES, CHECK_READINESS))
        inputs = run.chooser.choice(({"app": app}, {}, {"app": "nope"}))  # an unknown app fails the step
        execution_id, payload = run.fake.function_executed_event(callback_id, inputs)
        step = run.send(index, name, lambda c: c.event(payload), "event")
        step.execution = execution_id
    elif name == "workflow change request":
        _step_change_request(run, index)
    elif name == "watch toggle":
        with run.lock:
            run.toggled_on = not run.toggled_on
            words_ = f"{pre}watch" if run.toggled_on else f"{pre}watch off"
        run.send(index, name, lambda c: c.send(words_, channel_id=TOGGLED), "command")


def _admin_change(run: Run, index: int, app: str) -> None:
    tag = WRITE_TAG[app]
    action = "remove" if tag in dict(run.emulators[app].languages()) else "add"
    intent = Intent(app, action, tag)
    with run.lock:
        run.intents.append(intent)
    asked = run.send(index, "admin change", lambda c: c.send(f"{_app_prefix(app)}{action} {tag}"), "command")
    confirmation = _wait_answer(run.fake, asked.sent)
    value = _button_value(confirmation, CONFIRM_ACTION)
    if not value:  # refused (already there, Desk failed, …): nothing to click
        intent.answer = message_text(confirmation or {})[:120]
        return
    intent.request_id = value
    pick = run.chooser.random()

    def confirm(client: CommandClient) -> Sent:
        return client.click(CONFIRM_ACTION, value)

    if app == TWO_PERSON:
        _approval(run, index, intent, confirm, pick)
        return
    intent.variant = "confirm" if pick < 0.6 else "double" if pick < 0.8 else "cancel-confirm"

    if intent.variant == "confirm":
        run.send(index, "confirm", confirm, "block_actions")
    elif intent.variant == "double":  # two clicks at once, to two processes
        with ThreadPoolExecutor(max_workers=2) as pair:
            for offset in (0, 1):
                pair.submit(run.send, index + offset, "double confirm", confirm, "block_actions")
    else:
        cancelled = run.send(index, "cancel", lambda c: c.click(CANCEL_ACTION, value), "block_actions")
        _wait_answer(run.fake, cancelled.sent)
        run.send(index + 1, "confirm after cancel", confirm, "block_actions")


def _step_change_request(run: Run, index: int) -> None:
    """Request a language change (the Workflow Builder step) on prod, asked by someone who is not an
    admin (a workflow's user); an admin
    approves or rejects the request it posts, and the step must end exactly once."""
    app, tag = APPS[0], WRITE_TAG[APPS[0]]
    action = "remove" if tag in dict(run.emulators[app].languages()) else "add"
    intent = Intent(app, action, tag)
    with run.lock:
        run.intents.append(intent)
    execution_id, payload = run.fake.function_executed_event(
        REQUEST_CHANGE, {"app": app, "action": action, "tag": tag, "requested_by": STEP_ASKER})
    step = run.send(index, "workflow change request", lambda c: c.event(payload), "event")
    step.execution = execution_id
    request_id = _step_request(run, execution_id)
    if request_id is None:  # not asked (already there, Desk failing, …): the step failed
        intent.answer = "the step failed: " + str((run.fake.execution(execution_id) or _NO_EXECUTION).error)[:100]
        return
    intent.request_id, intent.held = request_id, True
    intent.variant = "step approve" if run.chooser.random() < 0.7 else "step reject"
    decision = APPROVE_ACTION if intent.variant == "step approve" else REJECT_ACTION
    run.send(index + 1, intent.variant, lambda c: c.click(decision, request_id, user_id=ADMIN), "block_actions")


def _step_request(run: Run, execution_id: str, timeout: float = 15.0) -> str | None:
    """The id of the request a step posted, once it is posted; None when the step ended without one."""
    assert run.store is not None
    query = sa.select(requests_table.c.id).where(
        (requests_table.c.step_execution == execution_id) & requests_table.c.approval_ts.is_not(None))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with run.store.engine.connect() as conn:
            found = conn.execute(query).scalar()
        if found is not None:
            return str(found)
        if (run.fake.execution(execution_id) or _NO_EXECUTION).state != "running":
            return None
        time.sleep(0.1)
    return None


def _approval(run: Run, index: int, intent: Intent, confirm: Callable[[Any], Sent], pick: float) -> None:
    """The requester's Confirm on the two-person app, then a decision on the request it posted."""
    intent.variant = ("approve" if pick < 0.45 else "double approve" if pick < 0.6 else "self approve"
                      if pick < 0.75 else "reject" if pick < 0.9 else "guest approve")
    waiting = _wait_answer(run.fake, run.send(index, "confirm for approval", confirm, "block_actions").sent)
    intent.held = "Waiting for a second admin" in message_text(waiting or {})
    if not intent.held:  # another request holds the app's lock, or Desk failed: nothing to decide
        intent.answer = message_text(waiting or {})[:120]
        return
    value = intent.request_id

    def click(action: str, user: str) -> Callable[[Any], Sent]:
        return lambda client: client.click(action, value, user_id=user)

    if intent.variant == "double approve":  # two approvals at once, to two processes
        with ThreadPoolExecutor(max_workers=2) as pair:
            for offset in (1, 2):
                pair.submit(run.send, index + offset, "double approve", click(APPROVE_ACTION, SECOND_ADMIN),
                            "block_actions")
        return
    if intent.variant in ("self approve", "guest approve"):
        refused_by = ADMIN if intent.variant == "self approve" else GUEST
        refused = run.send(index + 1, intent.variant, click(APPROVE_ACTION, refused_by), "block_actions")
        _wait_answer(run.fake, refused.sent)
        if intent.variant == "guest approve":
            return  # left to expire (DESK_APPROVAL_TTL)
    decision = APPROVE_ACTION if intent.variant == "approve" else REJECT_ACTION
    run.send(index + 2, intent.variant, click(decision, SECOND_ADMIN), "block_actions")


# --- background threads: faults, the console, the kill ---------------------------------------------


def _inject_faults(run: Run, stop: threading.Event, injected: Counter[str], chooser: random.Random) -> None:
    upcoming: list[dict[str, Any]] = []
    pending_api: dict[tuple[str, str], int] = {}
    while not stop.wait(TICK_S):
        if chooser.random() < TICK_S / DESK_FAULT_EVERY_S:
            if not upcoming:  # every kind of fault in turn, in a random order each round
                upcoming = list(DESK_FAULTS)
                chooser.shuffle(upcoming)
            fault, app = upcoming.pop(), chooser.choice(APPS)
            api = fault.get("api")
            used = sum(1 for c in run.emulators[app].calls() if api and c["api"] == api)
            if api is None or pending_api.get((app, api), -1) < used:  # one per API pending at a time
                run.emulators[app].inject(times=1, **fault)
                if api is not None:
                    pending_api[(app, api)] = used
                injected[f"desk {app} " + ", ".join(f"{k}={v}" for k, v in fault.items())] += 1
        if (chooser.random() < TICK_S / SLACK_500_EVERY_S and _pending(run.fake, injected, "response_url", 500) == 0
                and time.time() - _last_used(run.fake, "response_url", 500) > SLACK_500_SPACING_S):
            run.fake.script("response_url", status=500)
            injected["slack response_url 500"] += 1
        if chooser.random() < TICK_S / SLACK_429_EVERY_S and _pending(run.fake, injected, "chat.postMessage", 429) == 0:
            run.fake.script("chat.postMessage", status=429, headers={"Retry-After": "1"})
            injected["slack chat.postMessage 429"] += 1


def _last_used(fake: FakeSlack, method: str, status: int) -> float:
    """When a call to `method` was last answered `status` (0: never)."""
    return max((c.at for c in fake.calls(method) if c.status == status), default=0.0)


def _pending(fake: FakeSlack, injected: Counter[str], method: str, status: int) -> int:
    """Scripted answers not yet used. One at a time: queued ones would hit the same post's retries
    back to back, a longer Slack outage than one fault (three 500s in a row exhaust the bot's retries)."""
    used = sum(1 for c in fake.calls(method) if c.status == status and c.body.get("channel") != DIGEST_CHANNEL)
    return injected[f"slack {method} {status}"] - used


def _console(run: Run, stop: threading.Event, every: float) -> None:
    """Someone in the Tencent console, adding and removing a language now and then, each app in turn."""
    turn = 0
    while not stop.wait(every):
        app = APPS[turn % len(APPS)]
        turn += 1
        emulator, tag = run.emulators[app], CONSOLE_TAG[app]
        now = emulator.languages()
        changed = [p for p in now if p[0] != tag] if tag in dict(now) else [*now, (tag, 0)]
        emulator.set_languages(changed)
        run.console.append({"at": time.time(), "app": app, "tag": tag, "added": len(changed) > len(now)})


def _kill_and_restart(run: Run, at: float, down_for: float) -> None:
    """Drain the victim (no new requests; every one it was given acknowledged and answered, its
    /metrics still), keep that scrape as its first life's totals, SIGKILL it, restart it."""
    victim = run.processes[VICTIM]
    time.sleep(max(0.0, at - time.monotonic()))
    victim.draining.set()
    drain_started = time.monotonic()
    deadline = drain_started + 40
    while victim.in_flight and time.monotonic() < deadline:
        time.sleep(0.05)
    with run.lock:
        given = {s.sent.name for s in run.steps if s.process == victim.name and s.sent.status == 200
                 and not _answered_in_ack(s.sent) and not s.execution}
        executions = {s.execution for s in run.steps if s.process == victim.name and s.execution}

    def steps_ended(fake: FakeSlack) -> bool:  # a workflow step ends by its completion, not an answer
        return all((fake.execution(e) or _NO_EXECUTION).state not in ("running",) for e in executions)

    run.kill["drained"] = victim.in_flight == 0 and wait_for_answers(
        run.fake, given, timeout=max(0.0, deadline - time.monotonic())
    ) and run.fake.wait_for(steps_ended, timeout=max(0.1, deadline - time.monotonic()))
    run.first_life.append(_still_scrape(run, victim))
    run.kill["drain_s"] = round(time.monotonic() - drain_started, 1)
    victim.down.set()
    run.kill["at"] = time.time()
    victim.server.kill()
    time.sleep(down_for)
    run.kill["restart_s"] = round(victim.server.start(), 2)
    victim.down.clear()
    victim.draining.clear()
    run.kill["back_at"] = time.time()
    run.kill["process"] = victim.name


def _still_scrape(run: Run, process: BotProcess, timeout: float = 20.0) -> str:
    """`process`'s /metrics once the work that follows its answers is done: it holds no watch
    alert claim (its observer's worker delivers alerts from its last fetches, pausing between
    posts to a channel and for a 429's Retry-After, claim in hand) and its counters stayed the
    same over three scrapes 0.5 s apart."""
    deadline = time.monotonic() + timeout
    texts = [process.scrape()]
    while time.monotonic() < deadline:
        time.sleep(0.5)
        texts = [*texts[-2:], process.scrape()]
        still = len(texts) == 3 and len({tuple(sorted(_counters(t).items())) for t in texts}) == 1
        if still and not _claims_held(run, process):
            return texts[-1]
    run.kill["not_still"] = True
    return texts[-1]


def _claims_held(run: Run, process: BotProcess) -> list[str]:
    """The watch alerts `process` (its server or a worker) has claimed and not yet settled."""
    assert run.store is not None
    pids = {str(pid) for pid in (process.server.pid, *process.server.worker_pids())}
    return [
        f"{a.channel_id} {a.app} {a.change_id}" for a in run.store.all_alerts()
        if a.state is ClaimState.CLAIMED and (a.owner or "::").split(":")[-2] in pids  # owner: host:pid:random
    ]


# --- change control: plan and apply as the command line ----------------------------------------------

_LOG_LINE = re.compile(r" (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


def _cli_environment(environment: dict[str, str], work: Path) -> tuple[dict[str, str], Path]:
    """The servers' variables for `python -m bot plan|apply` as CI runs them: no Slack token (the
    audit stays in the shared database), its own Desk admin, desk-languages.toml in its working
    directory (the servers, elsewhere, have none)."""
    env = {key: value for key, value in environment.items() if not key.startswith("SLACK_")}
    env.update({f"DESK_{app.upper()}_IDENTIFIER": CHANGE_CONTROL for app in APPS}, LOG_LEVEL="WARNING")
    folder = work / "change-control"
    folder.mkdir(exist_ok=True)
    return env, folder


def _cli(run: Run, env: dict[str, str], cwd: Path, *args: str) -> CliRun:
    started = time.time()
    done = subprocess.run([sys.executable, "-m", "bot", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=90, stdin=subprocess.DEVNULL, check=False)
    said = [line for line in done.stderr.splitlines() if line.strip() and not _LOG_LINE.search(line)]
    ran = CliRun(args[0], "--approved-by" in args, started, time.time(), done.returncode, said, done.stdout)
    with run.lock:
        run.cli_runs.append(ran)
    return ran


def _change_control_round(run: Run, env: dict[str, str], cwd: Path) -> None:
    """Declare staging as Desk has it now with APPLY_TAG toggled (so there is always a change for
    apply), then: `plan --json`; `apply --app staging --yes` without --approved-by (refused, exit 2,
    nothing written); and with --approved-by SECOND_ADMIN (writes, unless a request waits in Slack or
    Desk fails)."""
    tags = [tag for tag, _ in run.emulators[TWO_PERSON].languages()]
    declared = [tag for tag in tags if tag != APPLY_TAG] if APPLY_TAG in tags else [*tags, APPLY_TAG]
    (cwd / "desk-languages.toml").write_text(f"[{TWO_PERSON}]\nlanguages = {json.dumps(declared)}\n",
                                             encoding="utf-8")
    _cli(run, env, cwd, "plan", "--json")
    _cli(run, env, cwd, "apply", "--app", TWO_PERSON, "--yes")
    _cli(run, env, cwd, "apply", "--app", TWO_PERSON, "--yes", "--approved-by", SECOND_ADMIN)


def _change_control(run: Run, stop: threading.Event, every: float, env: dict[str, str], cwd: Path) -> None:
    while not stop.wait(every):
        _change_control_round(run, env, cwd)


# --- the run --------------------------------------------------------------------------------------


@contextlib.contextmanager
def _services() -> Iterator[tuple[RedisServer, PostgresServer]]:
    initdb, pg_ctl = pg_tool("initdb"), pg_tool("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise RuntimeError("the soak needs PostgreSQL (apt-get install postgresql)")
    redis_binary = shutil.which("redis-server")
    if redis_binary is None:
        raise RuntimeError("the soak needs redis-server (apt-get install redis-server)")
    with RedisServer(redis_binary) as redis_server, PostgresServer(initdb, pg_ctl) as postgres:
        yield redis_server, postgres


def run(options: Options) -> dict[str, Any]:
    seconds, rate = (30.0, 3.0) if options.smoke else (180.0, 6.0)
    console_every = 10.0 if options.smoke else 2.5 * WATCH_INTERVAL
    change_control_every = 12.0 if options.smoke else 30.0  # a plan and two applies each time, in the mix
    chooser = random.Random(2026)
    names = [name for name, weight in MIX for _ in range(weight)]
    mix = [chooser.choice(names) for _ in range(int(seconds * rate))]
    injected: Counter[str] = Counter()
    with (
        workspace(NAME) as work, fake_slack(socket_mode=True) as fake, _services() as (redis_server, postgres),
        EmulatorProcess(0, "default", admins=[CHANGE_CONTROL]) as prod,
        EmulatorProcess(1, "staging", admins=[CHANGE_CONTROL]) as staging,
    ):
        emulators = {"prod": prod, "staging": staging}
        fake.functions = manifest_functions()  # the workflow steps' completions are checked against it
        prod.set_languages(PROD_START)
        prod.set_faq(WRITE_TAG["prod"], [])  # Desk deletes only a language without FAQ questions
        staging.set_faq(APPLY_TAG, [])
        settings: dict[str, Any] = {
            "DESK_APPS": ",".join(APPS), "DESK_TIMEOUT": DESK_TIMEOUT, "DESK_CACHE_TTL": CACHE_TTL,
            "DESK_PROD_SDKAPPID": prod.sdkappid, "DESK_PROD_SECRET_KEY": prod.key, "DESK_PROD_API_URL": prod.base_url,
            "DESK_STAGING_SDKAPPID": staging.sdkappid, "DESK_STAGING_SECRET_KEY": staging.key,
            "DESK_STAGING_API_URL": staging.base_url,
            "DESK_PROD_LABEL": "Production", "DESK_STAGING_LABEL": "Staging",
            "DESK_ADMINS": f"{ADMIN},{SECOND_ADMIN}", "DESK_AUDIT_CHANNEL": AUDIT_CHANNEL,
            "DESK_WATCH_INTERVAL": WATCH_INTERVAL,
            f"DESK_{TWO_PERSON.upper()}_APPROVALS": 2, "DESK_APPROVAL_TTL": APPROVAL_TTL,
            "REDIS_URL": redis_server.url, "DATABASE_URL": postgres.url, "DIGEST_TICKER": 1,
        }
        digest_due = None
        if not options.smoke:  # a digest falls due only at a minute boundary: not within a smoke run
            digest_due = _next_minute(datetime.now(UTC) + timedelta(seconds=40))
            settings.update(DIGEST_CHANNEL=DIGEST_CHANNEL, DIGEST_SCHEDULE=f"daily {digest_due:%H:%M} UTC")
            fake.script("chat.postMessage", status=429, headers={"Retry-After": "1"}, channel=DIGEST_CHANNEL)
        fake.script("chat.postMessage", body={"ok": False, "error": "not_in_channel"}, channel=GONE, times=-1)
        environment = bot_environment(prod, fake, work, **settings)
        cli_env, cli_cwd = _cli_environment(environment, work)
        release_phase(environment, work)
        processes = bot_processes(environment, work, fake)
        try:
            store = WatchStore(connect(postgres.url))
            state = Run(processes, emulators, fake, random.Random(11), store=store)
            _set_up_watches(state)
            # The emulators' calls are kept from the boot on (the /metrics totals count them all);
            # the figures of the mix take those from here.
            mix_from = time.time()
            _change_control_round(state, cli_env, cli_cwd)  # one round before the faults and the requests
            started = time.monotonic()
            stop = threading.Event()
            threads = [
                threading.Thread(target=_inject_faults, args=(state, stop, injected, random.Random(7)), daemon=True),
                threading.Thread(target=_console, args=(state, stop, console_every), daemon=True),
                threading.Thread(target=_change_control, args=(state, stop, change_control_every, cli_env, cli_cwd),
                                 daemon=True),
                threading.Thread(target=_kill_and_restart, args=(state, started + seconds * 0.45, 4.0), daemon=True),
            ]
            for thread in threads:
                thread.start()
            with ThreadPoolExecutor(max_workers=24, thread_name_prefix="mix") as pool:
                for index, name in enumerate(mix):
                    delay = started + index / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    pool.submit(scenario, state, index, name)
            stop.set()
            for thread in threads:
                thread.join(60)
            sending_s = time.monotonic() - started
            for emulator in emulators.values():
                emulator.clear_faults()
            fake.clear_scripts()
            fake.script("chat.postMessage", body={"ok": False, "error": "not_in_channel"}, channel=GONE, times=-1)
            waiting = {s.sent.name for s in state.steps if s.sent.status == 200 and not _answered_in_ack(s.sent)}
            wait_for_answers(fake, waiting, timeout=40)
            settled_s, caught_up = _settle_watch(state, store, timeout=3 * WATCH_INTERVAL + 20)
            if digest_due is not None:  # the ticker runs a couple of seconds after the minute
                fake.wait_for(lambda f: _digests_posted(f) > 0, timeout=max(0.0, digest_due.timestamp() - time.time())
                              + 15)
            time.sleep(2.0)  # anything late (a duplicate) has time to show up
            database = {**_read_database(postgres.url, store), "caught_up": caught_up}
            metrics = _agree_when_quiet(state)
            mixed = {app: [c for c in em.calls() if c["at"] >= mix_from] for app, em in emulators.items()}
            desk_calls = {app: [c for c in calls if not _from_cli(c)] for app, calls in mixed.items()}
            cli_calls = {app: [c for c in calls if _from_cli(c)] for app, calls in mixed.items()}
            finals = {app: emulator.languages() for app, emulator in emulators.items()}
        finally:
            for process in processes:
                process.server.stop()
        logs = {p.name: p.log_text() for p in processes}
    keep_log(NAME, options, "".join(f"===== {name} =====\n{text}" for name, text in logs.items()))
    figures = _figures(
        state, deliveries(fake), fake.calls(), desk_calls, finals, database, logs, injected, digest_due, metrics,
        cli_calls,
    )
    figures["watch_settled_s"] = settled_s
    figures["settings"] = {
        "requests_planned": len(mix), "seconds": seconds, "rate_per_s": rate, "desk_timeout_s": DESK_TIMEOUT,
        "cache_ttl_s": CACHE_TTL, "watch_interval_s": WATCH_INTERVAL, "console_change_every_s": console_every,
        "apps": list(APPS), "processes": [f"{p.name} ({p.kind})" for p in processes],
        "mix": dict(Counter(mix)), "desk_faults": [", ".join(f"{k}={v}" for k, v in f.items()) for f in DESK_FAULTS],
        "desk_fault_every_s": DESK_FAULT_EVERY_S, "response_url_500_every_s": SLACK_500_EVERY_S,
        "post_message_429_every_s": SLACK_429_EVERY_S, "watchers": {a: list(c) for a, c in WATCHERS.items()},
        "digest_due": None if digest_due is None else digest_due.isoformat(),
        "change_control_every_s": change_control_every, "apply_tag": APPLY_TAG,
    }
    figures["sending_seconds"] = round(sending_s, 1)
    _print(figures)
    return figures


def _set_up_watches(run: Run) -> None:
    """Each watching channel subscribes with a signed `watch`; every answer is checked."""
    for app, channels in WATCHERS.items():
        for channel in channels:
            sent = run.processes[0].client.send(f"{_app_prefix(app)}watch", channel_id=channel)
            run.setup.append(Step("watch setup", sent, run.processes[0].name, "command"))
            answer = _wait_answer(run.fake, sent, timeout=15)
            if answer is None or "watch" not in message_text(answer).lower():
                raise RuntimeError(f"`watch` in {channel} was not answered: {sent.status} {sent.body[:200]!r}")


def _settle_watch(run: Run, store: WatchStore, timeout: float) -> tuple[float, bool]:
    """Wait until each app's last list seen by watch is the emulator's (caught up: True), then
    until every alert is out; the seconds it took."""
    started = time.monotonic()
    caught_up = False
    while not caught_up and time.monotonic() - started < timeout:
        seen = {app: store.get_state(app).list_json for app in APPS}
        caught_up = all(_pairs_of(seen[app]) == _pairs(run.emulators[app].languages()) for app in APPS)
        time.sleep(0 if caught_up else 0.5)
    deadline = time.monotonic() + 3 * WATCH_INTERVAL
    while time.monotonic() < deadline:  # delivery runs at every tick: wait until no alert is missing
        if not _missing_alerts(store.events_since(0), _watch_posts(run.fake.calls())):
            break
        time.sleep(0.5)
    return round(time.monotonic() - started, 1), caught_up


def _pairs(items: Sequence[Sequence[Any]]) -> list[tuple[str, bool]]:
    return sorted((str(tag), bool(default)) for tag, default in items)


def _pairs_of(list_json: str | None) -> list[tuple[str, bool]]:
    """The (tag, is default) pairs of a list as watch stored it (LanguageList.to_json)."""
    return _pairs(json.loads(list_json)["languages"]) if list_json else []


def _read_database(url: str, store: WatchStore) -> dict[str, Any]:
    engine = connect(url)
    with engine.connect() as conn:
        audit = [dict(r._mapping) for r in conn.execute(sa.select(audit_table))]
        requests = [dict(r._mapping) for r in conn.execute(sa.select(requests_table))]
    watches = [{"channel": w.channel_id, "app": w.app, "enabled": w.enabled} for w in store.watches(enabled_only=False)]
    events = [{"app": e.app, "change_id": e.change_id, "kind": e.kind, "created_at": e.created_at}
              for e in store.events_since(0)]
    claims = {f"{a.channel_id} {a.app} {a.change_id}": f"{a.state} ({a.error or 'no error'})"
              for a in store.all_alerts()}
    engine.dispose()
    return {"audit": audit, "requests": requests, "watches": watches, "events": events, "claims": claims}


def _next_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _digests_posted(fake: FakeSlack) -> int:
    return sum(1 for c in fake.calls("chat.postMessage") if c.status == 200 and c.body.get("channel") == DIGEST_CHANNEL)


def _watch_posts(calls: Sequence[Any]) -> list[Any]:
    return [c for c in calls if c.method == "chat.postMessage" and _event_of(c) is not None]


def _event_of(call: Any) -> tuple[str, str] | None:
    metadata = call.body.get("metadata")
    if isinstance(metadata, str):
        with contextlib.suppress(ValueError):
            metadata = json.loads(metadata)
    if not isinstance(metadata, dict) or metadata.get("event_type") != EVENT_TYPE:
        return None
    payload = metadata.get("event_payload") or {}
    return str(payload.get("app")), str(payload.get("change"))


def _missing_alerts(events: Sequence[Any], posts: Sequence[Any]) -> list[tuple[str, str, str]]:
    posted = {(c.body.get("channel"), *(_event_of(c) or ("", ""))) for c in posts if c.status == 200}
    return [
        (channel, event.app, event.change_id)
        for event in events
        for channel in WATCHERS[event.app]
        if channel != GONE and (channel, event.app, event.change_id) not in posted
    ]


# --- the figures ----------------------------------------------------------------------------------


def _answered_in_ack(sent: Sent) -> bool:
    """The ack carried the answer itself (not a "checking…" note whose answer follows)."""
    return sent.answered_in_ack and PROGRESS.encode() not in sent.body


def _figures(
    run: Run, got: dict[str, Any], slack_calls: list[Any], desk_calls: dict[str, list[dict[str, Any]]],
    finals: dict[str, list[tuple[str, int]]], database: dict[str, Any], logs: dict[str, str],
    injected: Counter[str], digest_due: datetime | None, metrics: dict[str, Any],
    cli_calls: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    steps = run.steps
    killed_at, victim = run.kill.get("at", 0.0), run.kill.get("process")
    ended = _step_endings(run.fake, slack_calls)
    for step in steps:  # acknowledged by the process just before it was killed, and never answered
        if step.execution:
            continue  # a step's end is counted apart (below); the kill never cuts one acknowledged
        if step.process == victim and killed_at - 30 <= step.sent.sent_at <= killed_at and step.sent.status == 200:
            delivery = got.get(step.sent.name)
            step.cut = step.cut or (not _answered_in_ack(step.sent) and not (delivery and delivery.accepted))
    workflow = [s for s in steps if s.execution and not s.cut]
    counted = [s for s in steps if not s.cut and not s.execution]
    kinds: Counter[str] = Counter()
    exactly_once, twice, never, answer_s = 0, 0, 0, []
    unanswered = []
    for step in counted:
        one = step.sent
        delivery = got.get(one.name)
        accepted = len(delivery.accepted) if delivery is not None else 0
        answers = accepted + (1 if _answered_in_ack(one) else 0)
        exactly_once += answers == 1
        twice += answers > 1
        never += answers == 0
        if _answered_in_ack(one):
            kinds[f"{step.scenario} → in the ack: {_kind(_json(one.body))}"] += 1
            answer_s.append(one.ack_s)
        elif delivery is not None and accepted:
            kinds[f"{step.scenario} → response_url: {_kind(delivery.accepted[0].body)}"] += 1
            answer_s.append(delivery.accepted[0].at - one.sent_at)
        if answers != 1:
            unanswered.append({"scenario": step.scenario, "text": one.text, "process": step.process,
                               "ack_status": one.status, "answers": answers, "error": one.error,
                               "sent_at": round(one.sent_at, 3)})
    fivexx = sum(500 <= s.sent.status < 600 for s in steps)
    step_ends = Counter(ended.get(s.execution, ("running", 0))[0] for s in workflow)
    steps_once = sum(ended.get(s.execution, ("running", 0)) in (("completed", 1), ("failed", 1)) for s in workflow)
    acked = sum(s.sent.acked for s in counted) + sum(s.sent.acked for s in workflow)
    writes = _writes(run, desk_calls, database)
    change = _change_control_figures(run, cli_calls, database)
    alerts = _alerts(slack_calls, database)
    logged = {name: tracebacks(text) for name, text in logs.items()}
    error_lines = [line for text in logs.values() for line in text.splitlines() if " ERROR " in line]
    digest_posts = [
        c for c in slack_calls if c.method == "chat.postMessage" and c.body.get("channel") == DIGEST_CHANNEL
    ]
    figures: dict[str, Any] = {
        "requests_sent": len(steps),
        "requests_counted": len(counted),
        "by_process": dict(Counter(s.process for s in steps)),
        "kill": {**run.kill, "resent": sum(s.resent for s in steps), "cut": sum(s.cut for s in steps),
                 "cut_detail": [{"scenario": s.scenario, "status": s.sent.status, "error": s.sent.error}
                                for s in steps if s.cut][:10]},
        "acked": acked,
        "http_5xx": fivexx,
        "ack": spread_ms([s.sent.ack_s for s in counted if s.sent.status]),
        "answered_in_ack": sum(_answered_in_ack(s.sent) for s in counted),
        "answered_exactly_once": exactly_once,
        "answered_more_than_once": twice,
        "never_answered": never,
        "not_once_detail": unanswered[:10],
        "answer": spread_ms(answer_s),
        "answer_kinds": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
        "response_url_posts_refused": sum(len(d.refused) for d in got.values()),
        "faults_injected": dict(sorted(injected.items())),
        "desk_outcomes": dict(Counter(f"{app} {c['api']}: {c['outcome']}" for app, calls in desk_calls.items()
                                      for c in calls).most_common()),
        "writes": writes,
        "change_control": change,
        "workflow_steps": {"sent": len(workflow), "acked": sum(s.sent.acked for s in workflow),
                           "ended_exactly_once": steps_once, "ends": dict(step_ends)},
        "alerts": alerts,
        "console_changes": len(run.console),
        "final_lists": {app: [f"{t}{'*' if d else ''}" for t, d in pairs] for app, pairs in finals.items()},
        "digest": {
            "due": None if digest_due is None else digest_due.isoformat(),
            "post_attempts": len(digest_posts),
            "answered_429": sum(c.status == 429 for c in digest_posts),
            "posted": sum(c.status == 200 for c in digest_posts),
        },
        "tracebacks_in_logs": logged,
        "error_lines_in_logs": len(error_lines),
        "error_lines_sample": error_lines[:5],
        "metrics": metrics,
    }
    requests = len(counted) + len(workflow)
    targets = [
        target("every request acknowledged (200 within 3 s)", f"{acked}/{requests}", acked == requests),
        target("every request answered exactly once", f"{exactly_once}/{len(counted)} (never {never}, twice {twice})",
               exactly_once == len(counted)),
        target("every workflow step ended exactly once (completed or failed)",
               f"{steps_once}/{len(workflow)} ({', '.join(f'{k} {v}' for k, v in step_ends.items()) or 'none'})",
               steps_once == len(workflow)),
        target("every confirmation applied at Desk at most once, none after Cancel",
               f"{writes['applied']} applied ({writes['sent']} sent) for {writes['confirmed']} confirmations "
               f"({writes['double']} double-clicked); {writes['after_cancel']} after Cancel; "
               f"{writes['more_than_once']} twice",
               writes["more_than_once"] == 0 and writes["after_cancel"] == 0
               and writes["applied"] <= writes["confirmed"]),
        target("every write recorded in the audit",
               f"{writes['audited']} audit lines for {writes['requests_done']} decided confirmations; "
               f"{writes['in_doubt_at_the_kill']} left applying by the kill",
               writes["audited"] == writes["requests_done"] and writes["audit_matches"]),
        target(f"{TWO_PERSON} (two-person approval): no write without a second admin's approval, none twice",
               f"{writes['two_person']['writes_sent']} sent for {writes['two_person']['approved']} approved of "
               f"{writes['two_person']['held']} requests; {writes['two_person']['without_approval']} without approval, "
               f"{writes['two_person']['twice']} twice; ended unwritten {writes['two_person']['ended_without_write']}",
               writes["two_person"]["without_approval"] == 0 and writes["two_person"]["twice"] == 0
               and writes["two_person"]["writes_sent"] <= writes["two_person"]["approved"]),
        target("non-admins never write", f"{writes['by_guest']} requests or audit lines by the guest",
               writes["by_guest"] == 0),
        target(f"plan and apply (command line): apply on {TWO_PERSON} without --approved-by refused, exit 2 in one "
               "line, writing nothing (exit 3 if Desk failed first); plan writes nothing",
               f"{change['refused_one_line']} of {change['applies_unapproved']} refused in one line "
               f"(exits {change['unapproved_exits']}); {change['writes_by_unapproved']} writes by them, "
               f"{change['writes_by_plan']} by {change['plans']} plans (exits {change['plan_exits']})",
               change["applies_unapproved"] > 0 and change["writes_by_unapproved"] == 0
               and change["writes_by_plan"] == 0 and change["unapproved_refused"] == change["applies_unapproved"]),
        target(f"apply on {TWO_PERSON} with --approved-by: no write without a second admin named, none twice, "
               "each audited as apply:<user> with the approver",
               f"{change['applied']} applied ({change['writes_sent']} sent) by {change['applies_approved']} runs "
               f"(exits {change['approved_exits']}, {change['refused_by_lock']} refused by a request waiting in "
               f"Slack); {change['audited']} audit lines, {change['without_approver']} without the approver, "
               f"{change['twice']} twice",
               change["without_approver"] == 0 and change["twice"] == 0 and change["audit_matches"]
               and change["writes_outside_runs"] == 0),
        target("every watch event alerted exactly once per watching channel",
               f"{alerts['delivered_once']}/{alerts['due']} (missing {alerts['missing']}, twice {alerts['twice']}, "
               f"unknown {alerts['unexpected']}) over {alerts['events']} events",
               alerts["delivered_once"] == alerts["due"] and alerts["twice"] == 0 and alerts["unexpected"] == 0),
        target("the removed channel: one refused post, then its watch stops",
               f"{alerts['gone_attempts']} post(s) for {alerts['gone_events']} prod events, watch "
               f"{'on' if alerts['gone_enabled'] else 'off'}",
               alerts["gone_attempts"] == min(1, alerts["gone_events"])
               and alerts["gone_enabled"] == (alerts["gone_events"] == 0)),
        target("watch caught up with the lists at the end", f"after {len(run.console)} console changes and "
               f"{writes['sent']} writes: {'yes' if alerts['caught_up'] else 'no'}", alerts["caught_up"]),
        target("zero HTTP 5xx", str(fivexx), fivexx == 0),
        target("zero tracebacks in any process log", str(sum(logged.values())), sum(logged.values()) == 0),
        target("the /metrics totals agree exactly with the soak's own counts",
               "yes" if metrics["agree"] else f"no: {metrics['first_disagreement']}", metrics["agree"] is True),
    ]
    if digest_due is not None:
        posted = figures["digest"]["posted"]
        targets.append(target("the digest posted exactly once (after a 429)", str(posted), posted == 1))
    figures["targets"] = targets
    return figures


# What a write call did at the emulator: an injected code or HTTP status (and Desk's own -14)
# answers instead of the call; anything else (0, a hang, a truncated answer) took effect.
_NOT_APPLIED = re.compile(r"^(-?\d+|http-\d+)$")


def _step_endings(fake: FakeSlack, slack_calls: list[Any]) -> dict[str, tuple[str, int]]:
    """Each workflow step execution: (its state at the fake, how many completions the bot sent)."""
    attempts = Counter(str(c.body.get("function_execution_id")) for c in slack_calls
                       if c.method in ("functions.completeSuccess", "functions.completeError"))
    return {execution: ((fake.execution(execution) or _NO_EXECUTION).state, attempts[execution])
            for execution in attempts}


_NO_EXECUTION = StepExecution("", "", state="unknown")


def _writes(run: Run, desk_calls: dict[str, list[dict[str, Any]]], database: dict[str, Any]) -> dict[str, Any]:
    """Writes at the emulators against the confirmations clicked, the requests and the audit."""
    sent = [(app, c) for app, calls in desk_calls.items() for c in calls if c["api"] in (ADD, DELETE)]
    applied = [(app, c) for app, c in sent if not _NOT_APPLIED.match(str(c["outcome"])) or c["outcome"] == 0]
    by_request = {r["id"]: r for r in database["requests"]}
    confirmed = [i for i in run.intents if i.variant in ("confirm", "double", "approve", "double approve",
                                                            "step approve")]
    cancelled = [i for i in run.intents if i.variant == "cancel-confirm"]
    everything = [a for a in database["audit"] if not _by_apply(a)]  # apply's: _change_control_figures
    audit = [a for a in everything if a["result"] not in UNWRITTEN]  # the writes (a request for approval
    # that ended without one is audited too: rejected, cancelled, expired, superseded)
    ended_unwritten = [a for a in everything if a["result"] in UNWRITTEN]
    audited_per_request = Counter(str(a["request_id"]) for a in audit)
    done = [r for r in database["requests"] if r["state"] == "done"]
    took_effect = Counter(
        (app, "add" if c["api"] == ADD else "remove", str(json.loads(c["body"] or "{}").get("LanguageTag")))
        for app, c in applied
    )
    in_audit = Counter((a["app"], a["action"], a["tag"]) for a in audit)
    return {
        "sent": len(sent),
        "applied": len(applied),
        "outcomes": dict(Counter(f"{app} {c['api']}: {c['outcome']}" for app, c in sent)),
        "intents": len(run.intents),
        "refused_before_confirmation": sum(not i.variant for i in run.intents),
        "confirmed": len(confirmed),
        "double": sum(i.variant == "double" for i in confirmed),
        "after_cancel": sum(audited_per_request[i.request_id] for i in cancelled)
        + sum(by_request.get(i.request_id, {}).get("state") not in ("cancelled", None) for i in cancelled),
        "more_than_once": sum(n > 1 for n in audited_per_request.values()),
        "requests_done": len(done),
        "audited": len(audit),
        # every write that took effect has its audit line (per app, action and tag)
        "audit_matches": all(in_audit[key] >= n for key, n in took_effect.items())
        and all(audited_per_request[r["id"]] == 1 for r in done),
        "in_doubt_at_the_kill": sum(r["state"] == "applying" for r in database["requests"]),
        "audit_results": dict(Counter(a["result"] for a in audit)),
        "by_guest": sum(r["requested_by"] == GUEST for r in database["requests"])
        + sum(a["who"] == GUEST for a in audit),
        "request_states": dict(Counter(r["state"] for r in database["requests"])),
        "two_person": _two_person(run, desk_calls, database, audit, ended_unwritten),
        "refusals": dict(Counter(i.answer[:70] for i in run.intents if not i.variant).most_common(5)),
    }


def _two_person(
    run: Run, desk_calls: dict[str, list[dict[str, Any]]], database: dict[str, Any], writes: list[dict[str, Any]],
    ended: list[dict[str, Any]],
) -> dict[str, Any]:
    """The app under two-person approval: every write there was approved by someone else than its
    requester, on a request that waited in the audit channel, once."""
    by_request = {r["id"]: r for r in database["requests"]}
    intents = [i for i in run.intents if i.app == TWO_PERSON and i.variant]
    approved = [i for i in intents if i.held and i.variant in ("approve", "double approve")]
    app_writes = [a for a in writes if a["app"] == TWO_PERSON]
    unapproved = [
        a for a in app_writes
        if not a["request_id"] or not by_request.get(a["request_id"], {}).get("approval_ts")
        or a["who"] == by_request[a["request_id"]]["requested_by"]
    ]
    sent = [c for c in desk_calls.get(TWO_PERSON, []) if c["api"] in (ADD, DELETE)]
    return {
        "intents": len(intents),
        "held": sum(i.held for i in intents),
        "variants": dict(Counter(i.variant for i in intents if i.held)),
        "approved": len(approved),
        "writes_sent": len(sent),
        "writes_audited": len(app_writes),
        "without_approval": len(unapproved),
        "twice": sum(n > 1 for n in Counter(a["request_id"] for a in app_writes).values()),
        "ended_without_write": dict(Counter(a["result"] for a in ended if a["app"] == TWO_PERSON)),
        "refused_by_lock": sum("has been waiting since" in i.answer for i in intents),
    }


def _from_cli(call: dict[str, Any]) -> bool:
    """A Desk call the command line's plan or apply made (its own Desk admin)."""
    return call.get("identifier") == CHANGE_CONTROL


def _by_apply(entry: dict[str, Any]) -> bool:
    return str(entry["who"]).startswith("apply:")


def _change_control_figures(
    run: Run, cli_calls: dict[str, list[dict[str, Any]]], database: dict[str, Any]
) -> dict[str, Any]:
    """The command line's plan and apply runs against their writes at the emulators (told apart by
    their Desk admin, and from each other by time: one process at a time) and their audit lines."""
    with run.lock:
        runs = list(run.cli_runs)
    sent = [(app, c) for app, calls in cli_calls.items() for c in calls if c["api"] in (ADD, DELETE)]

    def during(ran: CliRun) -> list[tuple[str, dict[str, Any]]]:
        return [(app, c) for app, c in sent if ran.started <= c["at"] <= ran.ended]

    def key(app: str, call: dict[str, Any]) -> tuple[str, str, str]:
        return app, "add" if call["api"] == ADD else "remove", str(json.loads(call["body"] or "{}").get("LanguageTag"))

    plans = [r for r in runs if r.command == "plan"]
    unapproved = [r for r in runs if r.command == "apply" and not r.approved]
    approved = [r for r in runs if r.command == "apply" and r.approved]
    one_line = [r for r in unapproved if r.exit == 2 and len(r.said) == 1 and "--approved-by" in r.said[0]]
    by_approved = [write for r in approved for write in during(r)]
    took_effect = Counter(key(app, c) for app, c in by_approved
                          if not _NOT_APPLIED.match(str(c["outcome"])) or c["outcome"] == 0)
    rows = [a for a in database["audit"] if _by_apply(a)]
    in_audit = Counter((a["app"], a["action"], a["tag"]) for a in rows)
    plan_documents = [_json(r.out.encode()) for r in plans]
    return {
        "plans": len(plans),
        "plan_exits": dict(Counter(r.exit for r in plans)),
        "plan_json_schema_1": sum(d.get("schema") == 1 and any(a.get("app") == TWO_PERSON for a in d.get("apps", []))
                                  for d in plan_documents),
        "writes_by_plan": sum(len(during(r)) for r in plans),
        "applies_unapproved": len(unapproved),
        "unapproved_exits": dict(Counter(r.exit for r in unapproved)),
        "refused_one_line": len(one_line),
        "unapproved_refused": len(one_line) + sum(r.exit == 3 for r in unapproved),
        "writes_by_unapproved": sum(len(during(r)) for r in unapproved),
        "applies_approved": len(approved),
        "approved_exits": dict(Counter(r.exit for r in approved)),
        "refused_by_lock": sum(r.exit == 2 and "has been waiting since" in " ".join(r.said) for r in approved),
        "writes_sent": len(sent),
        "writes_outside_runs": len(sent) - len(by_approved) - sum(len(during(r)) for r in (*plans, *unapproved)),
        "applied": sum(took_effect.values()),
        "audited": len(rows),
        "audit_results": dict(Counter(a["result"] for a in rows)),
        "without_approver": sum(not str(a["detail"] or "").startswith(f"approved by {SECOND_ADMIN}")
                                or a["app"] != TWO_PERSON for a in rows),
        "twice": sum(n > 1 for r in approved for n in Counter(key(app, c) for app, c in during(r)).values()),
        "audit_matches": all(in_audit[k] >= n for k, n in took_effect.items()) and len(rows) <= len(by_approved),
        "said_by_refusals": sorted({r.said[0][:140] for r in (*unapproved, *approved) if r.exit == 2 and r.said}),
        "runs": [{"command": r.command + (" --approved-by" if r.approved else ""), "exit": r.exit,
                  "seconds": round(r.ended - r.started, 1)} for r in runs],
    }


def _alerts(slack_calls: list[Any], database: dict[str, Any]) -> dict[str, Any]:
    """Watch events (the bot's table) against the alerts FakeSlack received, per channel."""
    posts = _watch_posts(slack_calls)
    accepted = Counter((c.body.get("channel"), *(_event_of(c) or ("", ""))) for c in posts if c.status == 200)
    events = {(e["app"], e["change_id"]) for e in database["events"]}
    due = [(channel, app, change) for app, change in events for channel in WATCHERS[app] if channel != GONE]
    delivered = [accepted[key] for key in due]
    missing = [" ".join(key) for key, n in zip(due, delivered, strict=True) if n == 0]
    watching = {(w["channel"], w["app"]): w["enabled"] for w in database["watches"]}
    return {
        "events": len(events),
        "event_kinds": dict(Counter(e["kind"] for e in database["events"])),
        "due": len(due),
        "delivered_once": sum(n == 1 for n in delivered),
        "missing": len(missing),
        "missing_detail": {key: database["claims"].get(key, "never claimed") for key in missing[:10]},
        "twice": sum(n > 1 for n in accepted.values()),
        "unexpected": sum(1 for (_, app, change) in accepted if (app, change) not in events),
        "toggled_channel_posts": sum(n for (channel, _, _), n in accepted.items() if channel == TOGGLED),
        "gone_attempts": sum(1 for c in posts if c.body.get("channel") == GONE),  # each answered not_in_channel
        "gone_events": sum(e["app"] == "prod" for e in database["events"]),
        "gone_enabled": bool(watching.get((GONE, "prod"))),
        "answered_429": sum(c.status == 429 for c in posts),
        "caught_up": bool(database["caught_up"]),
    }


# The emulator records a call's API as the last part of its path (bot/sandbox/desk_emulator.py's APIS);
# the bot labels desk_api_requests_total with the Api it called. The one map between the two.
DESK_API_LABEL = {api.path.rsplit("/", 1)[-1]: api.value for api in Api}


def _soak_counts(run: Run, desk_calls: dict[str, list[dict[str, Any]]], slack_calls: list[Any]) -> dict[str, Any]:
    """The soak's own counts, keyed like /metrics' labels."""
    kinds = {p.name: p.kind for p in run.processes}
    with run.lock:
        steps = [*run.setup, *run.steps]
    # Every request that reached a bot: an HTTP answer, or an ack on the Socket Mode connection.
    requests: Counter[str] = Counter(f"{kinds[s.process]}/{s.kind}" for s in steps if s.sent.status)
    desk: dict[str, Counter[str]] = defaultdict(Counter)
    for app, calls in desk_calls.items():
        for call in calls:
            if not _from_cli(call):  # the command line's: no /metrics counts them
                desk[app][DESK_API_LABEL.get(call["api"], "unknown")] += 1
    posts = _watch_posts(slack_calls)
    alerts = Counter(
        "refused" if c.body.get("channel") == GONE else "ratelimited" if c.status == 429 else
        "posted" if c.status == 200 else f"http-{c.status}" for c in posts
    )
    return {
        "requests": dict(requests),  # by (route kind, request kind): what reached the bot processes
        "desk_calls": {app: dict(c) for app, c in desk.items()},  # by (app, api), as the emulators recorded them
        "slack_calls": dict(Counter(c.method for c in slack_calls)),  # by method, as FakeSlack recorded them
        "alerts": dict(alerts),  # watch alerts by outcome, as FakeSlack answered them
        "digests_posted": sum(1 for c in slack_calls if c.method == "chat.postMessage" and c.status == 200
                              and c.body.get("channel") == DIGEST_CHANNEL),
    }


def _counters(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every counter sample (`*_total`) of a /metrics text, by name and labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.endswith("_total")
    }


def _scraped(scrapes: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The /metrics texts of every process life (route kind, text), summed into `_soak_counts`' shape."""
    requests: Counter[str] = Counter()
    desk: dict[str, Counter[str]] = defaultdict(Counter)
    totals: Counter[str] = Counter()
    for route, text in scrapes:
        for (name, pairs), value in _counters(text).items():
            labels, count = dict(pairs), int(value)
            if name == "slack_requests_total":
                requests[f"{route}/{labels['kind']}"] += count
            elif name == "desk_api_requests_total":
                desk[labels["app"]][labels["api"]] += count
            elif name == "watch_alerts_total" and labels["outcome"] == "posted":
                totals["alerts_posted"] += count
            elif name == "digest_posts_total" and labels["outcome"] == "posted":
                totals["digests_posted"] += count
            elif name == "slack_api_calls_total" and labels["method"] == "chat.postMessage":
                totals["post_message_calls"] += count
    return {"requests": dict(requests), "desk_calls": {app: dict(c) for app, c in desk.items()}, **totals}


def metrics_agreement(counts: dict[str, Any], scrapes: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The soak's own counts against the bot's `/metrics` totals, compared exactly.

    `counts` is `_soak_counts()`; `scrapes` the /metrics text of every process life, with its
    route kind (both HTTP processes, the Socket Mode process, and the victim's first life, which
    its kill reset). Compared: requests by (route kind, kind); Desk calls by (app, api) against
    the emulators'; watch alerts and digests posted, and every chat.postMessage attempt (429s
    included), against FakeSlack's records.
    """
    scraped = _scraped(scrapes)
    rows: list[dict[str, Any]] = []

    def compare(count: str, labels: str, soak: int, metric: int) -> None:
        rows.append({"count": count, "labels": labels, "soak": soak, "metrics": metric})

    for key in sorted(set(counts["requests"]) | set(scraped["requests"])):
        compare("requests", key, counts["requests"].get(key, 0), scraped["requests"].get(key, 0))
    for app in sorted(set(counts["desk_calls"]) | set(scraped["desk_calls"])):
        ours, theirs = counts["desk_calls"].get(app, {}), scraped["desk_calls"].get(app, {})
        for api in sorted(set(ours) | set(theirs)):
            compare("Desk calls", f"{app} {api}", ours.get(api, 0), theirs.get(api, 0))
    compare("watch alerts", "posted", counts["alerts"].get("posted", 0), scraped.get("alerts_posted", 0))
    compare("digests", "posted", counts["digests_posted"], scraped.get("digests_posted", 0))
    compare("Slack API calls", "chat.postMessage", counts["slack_calls"].get("chat.postMessage", 0),
            scraped.get("post_message_calls", 0))
    differing = [row for row in rows if row["soak"] != row["metrics"]]
    return {
        "agree": not differing,
        "rows": rows,
        "first_disagreement": differing[0] if differing else None,
        "disagreements": differing[:10],
        "soak": counts,
    }


def _agree_when_quiet(run: Run, timeout: float = 30.0) -> dict[str, Any]:
    """`metrics_agreement()` at a quiet moment: a ticker may call Desk or Slack between the count
    and the scrape, so both are taken again, every 0.5 s, until they agree or `timeout` passes."""
    started = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        scrapes = [(p.kind, p.scrape()) for p in run.processes]
        scrapes += [(run.processes[VICTIM].kind, text) for text in run.first_life]
        counts = _soak_counts(run, {app: e.calls() for app, e in run.emulators.items()}, run.fake.calls())
        result = metrics_agreement(counts, scrapes)
        if result["agree"] or time.monotonic() - started >= timeout:
            return {**result, "scrapes": attempts, "waited_s": round(time.monotonic() - started, 1)}
        time.sleep(0.5)


def _json(raw: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _kind(message: dict[str, Any]) -> str:
    """What the user saw, from the message's fallback text and blocks."""
    fallback = str(message.get("text") or "")
    text = message_text(message)
    code = _ERROR_CODE.search(text)
    checks = (
        (fallback.startswith("Usage:"), "help"),
        (fallback.startswith("Unknown option"), "unknown option"),
        ("showing the list from" in text, f"stale list ({code.group(1) if code else '?'})"),
        (code is not None, f"error {code.group(1) if code else ''}"),
        (fallback.startswith(("Desk chatbot languages", "Desk chatbot default language")), "list"),
        ("Confirm" in text and "Cancel" in text, "confirmation"),
        ("was added" in text or "was deleted" in text, "applied"),
        ("cancelled" in text or "nothing was sent" in text, "cancelled"),
        ("already" in text, "already decided or there"),
        ("watch" in fallback.lower(), "watch"),
        ("ready" in text.lower(), "readiness"),
    )
    return next((name for hit, name in checks if hit), "other")


def _print(figures: dict[str, Any]) -> None:
    print_table(
        "Soak",
        ["sent", "counted", "acked", "5xx", "ack p99 ms", "in ack", "exactly once", "never", "twice", "re-sent",
         "cut by the kill"],
        [[
            figures["requests_sent"], figures["requests_counted"], figures["acked"], figures["http_5xx"],
            figures["ack"]["p99_ms"], figures["answered_in_ack"], figures["answered_exactly_once"],
            figures["never_answered"], figures["answered_more_than_once"], figures["kill"]["resent"],
            figures["kill"]["cut"],
        ]],
    )
    print_table("Answers by kind", ["kind", "requests"], list(figures["answer_kinds"].items()))
    print_table("Faults injected", ["fault", "times"], list(figures["faults_injected"].items()))
    print_table("Desk calls by outcome", ["app, API: outcome", "calls"], list(figures["desk_outcomes"].items()))
    for lost in figures["not_once_detail"]:
        print(f"  not answered once: {lost}")
    print(f"\nwrites: {figures['writes']}\nchange control: {figures['change_control']}\nalerts: {figures['alerts']}"
          f"\nkill: {figures['kill']}")
    print(f"digest: {figures['digest']}; response_url posts refused: {figures['response_url_posts_refused']}; "
          f"ERROR lines: {figures['error_lines_in_logs']}")
    metrics = figures["metrics"]
    print_table(f"/metrics against the soak's counts (agree: {metrics['agree']}, after {metrics['scrapes']} "
                "scrape(s))", ["count", "labels", "soak", "/metrics"],
                [[r["count"], r["labels"], r["soak"], r["metrics"]] for r in metrics["rows"]])
    for line in figures["error_lines_sample"]:
        print(f"  {line[:160]}")
    print_targets(figures["targets"])


def main(argv: Sequence[str] | None = None) -> int:
    return main_for(NAME, __doc__.splitlines()[0], run, argv)


if __name__ == "__main__":
    sys.exit(main())
