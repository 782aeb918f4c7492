"""The two test tiers: fast tests, and end-to-end tests marked `e2e` (`python -m pytest -m "not e2e"`).

A test is e2e when it is marked so (its own `@pytest.mark.e2e` or its module's `pytestmark`),
when it uses a fixture that starts a real server (one made with `@e2e_fixture`: the Desk
emulator, FakeSlack, redis-server, PostgreSQL, the bot served over loopback), or when it runs
on PostgreSQL (`database_url` parametrized "postgres"). Every other test is fast, and a
tripwire holds it to that: opening or binding a socket, starting a process or sleeping fails
the test with a message saying what to do. tests/conftest.py installs both hooks.
"""

from __future__ import annotations

import multiprocessing.process
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

E2E = pytest.mark.e2e
ADVICE = "mark the test e2e (pytest.mark.e2e) or give the code an in-memory fake of its interface (tests/support/)"

_E2E_FIXTURES: set[tuple[str, str]] = set()  # (module, fixture); module "" for a conftest's fixtures


def e2e_fixture(function: Callable[..., Any] | None = None, **options: Any) -> Any:
    """`@pytest.fixture` for a fixture that starts a real server: every test using it is e2e.

    A test module's fixture counts for that module's tests only (a fixture of the same name
    elsewhere may be an in-memory one); a conftest's counts everywhere."""

    def register(function: Callable[..., Any]) -> Any:
        module = "" if function.__module__.rpartition(".")[2] == "conftest" else function.__module__
        _E2E_FIXTURES.add((module, function.__name__))
        return pytest.fixture(**options)(function)

    return register(function) if function is not None else register


def is_e2e(item: pytest.Item) -> bool:
    if item.get_closest_marker("e2e"):
        return True
    module = getattr(getattr(item, "module", None), "__name__", None)
    names = getattr(item, "fixturenames", ())
    if any(("", name) in _E2E_FIXTURES or (module, name) in _E2E_FIXTURES for name in names):
        return True
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    return "postgres" in (params.get("database_url"), params.get("empty_database_url"))


def mark_end_to_end(items: list[pytest.Item]) -> None:
    """The body of `pytest_collection_modifyitems`: mark e2e every test `is_e2e` finds so."""
    for item in items:
        if not item.get_closest_marker("e2e") and is_e2e(item):
            item.add_marker(E2E)


class OutsideFastTier(BaseException):
    """A fast test did I/O or waited. A BaseException, so the code under test's `except Exception`
    cannot turn it into an ordinary error reply and hide it."""


class Tripwire:
    """Replaces the stdlib's ways out of the process for one fast test. Calls from threads that
    existed before the test (servers and workers left by earlier tests) pass through: they are
    not this test's doing."""

    def __init__(self, test: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.test = test
        self.tripped: list[str] = []
        self._monkeypatch = monkeypatch
        self._earlier = {thread for thread in threading.enumerate() if thread is not threading.current_thread()}

    def install(self) -> None:
        self._wrap(socket.socket, "connect", lambda _sock, address: f"opened a connection to {address!r}")
        self._wrap(socket.socket, "connect_ex", lambda _sock, address: f"opened a connection to {address!r}")
        self._wrap(socket.socket, "bind", lambda _sock, address: f"bound a socket (a server) to {address!r}")
        self._wrap(subprocess.Popen, "__init__", lambda _popen, args, *_, **__: f"started a process {args!r}")
        self._wrap(multiprocessing.process.BaseProcess, "start", lambda process: f"started a process {process!r}")
        for name in ("system", "fork", "posix_spawn", "posix_spawnp"):
            self._wrap(os, name, lambda *args, _name=name, **_: f"started a process (os.{_name})")
        self._wrap(time, "sleep", lambda seconds: f"slept {seconds!r} s")

    def _wrap(self, owner: Any, name: str, describe: Callable[..., str]) -> None:
        original = getattr(owner, name)

        def tripwire(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() in self._earlier:
                return original(*args, **kwargs)
            what = describe(*args, **kwargs)
            self.tripped.append(what)
            raise OutsideFastTier(f"{self.test} is a fast test but {what}: {ADVICE}")

        self._monkeypatch.setattr(owner, name, tripwire)


_REPORTED = pytest.StashKey[bool]()


def note_tripped_call(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    """For `pytest_runtest_makereport`: the test itself failed with the tripwire's message, so
    teardown need not say it again."""
    if call.when == "call" and call.excinfo is not None and call.excinfo.errisinstance(OutsideFastTier):
        item.stash[_REPORTED] = True


def fast_tier_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """The body of the autouse fixture: the tripwire around every test that is not e2e. A trip
    the code under test swallowed still fails the test, at teardown."""
    if is_e2e(request.node):
        yield
        return
    with pytest.MonkeyPatch.context() as monkeypatch:
        tripwire = Tripwire(request.node.nodeid, monkeypatch)
        tripwire.install()
        yield
    if tripwire.tripped and not request.node.stash.get(_REPORTED, False):
        pytest.fail(f"{request.node.nodeid} is a fast test but {tripwire.tripped[0]}: {ADVICE}", pytrace=False)
