"""The two test tiers (tests/support/tiers.py): what makes a test e2e, and the fast tier's tripwire
catching deliberate violations in an inner pytest run (pytester)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CONFTEST = """
import pytest
from tests.support.tiers import e2e_fixture, fast_tier_guard, mark_end_to_end, note_tripped_call

def pytest_collection_modifyitems(items):
    mark_end_to_end(items)

def pytest_runtest_makereport(item, call):
    note_tripped_call(item, call)

@pytest.fixture(autouse=True)
def _fast_tier(request):
    yield from fast_tier_guard(request)

@e2e_fixture
def tiers_inner_server():
    yield "a real server would start here"

@pytest.fixture
def database_url(request):
    return getattr(request, "param", "sqlite")
"""
INI = "[pytest]\naddopts = --strict-markers\nmarkers =\n    e2e: end to end\n"


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """An inner pytest with only our two tiers' hooks: no installed plugin (which may itself run git)."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeconftest(CONFTEST)
    pytester.makeini(INI)
    return pytester


VIOLATIONS = {
    "connect": "import socket\n    socket.create_connection(('127.0.0.1', 9), timeout=1)",
    "bind": "import socket\n    with socket.socket() as server:\n        server.bind(('127.0.0.1', 0))",
    "subprocess": "import subprocess, sys\n    subprocess.run([sys.executable, '-c', 'pass'])",
    "sleep": "import time\n    time.sleep(0.01)",
}
SAID = {
    "connect": "opened a connection to ('127.0.0.1', 9)",
    "bind": "bound a socket (a server) to ('127.0.0.1', 0)",
    "subprocess": "started a process [",
    "sleep": "slept 0.01 s",
}


@pytest.mark.parametrize("kind", list(VIOLATIONS))
def test_a_fast_test_that_does_io_or_sleeps_fails_saying_what_to_do(inner: pytest.Pytester, kind: str) -> None:
    inner.makepyfile(test_violation=f"def test_it():\n    {VIOLATIONS[kind]}\n")
    result = inner.runpytest("-m", "not e2e")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*test_violation.py::test_it is a fast test but {SAID[kind]}*mark the test e2e*"])


UNSEEN = {
    "swallowed": (
        "try:\n        socket.create_connection(('127.0.0.1', 9), timeout=1)\n"
        "    except BaseException:\n        pass  # as code under test might, turning it into an error reply",
        "opened a connection to ('127.0.0.1', 9)",
    ),
    "in-a-thread": (
        "worker = threading.Thread(target=time.sleep, args=(0.01,))\n    worker.start()\n    worker.join()",
        "slept 0.01 s",
    ),
}


@pytest.mark.parametrize("kind", list(UNSEEN))
def test_a_violation_the_test_never_sees_still_fails_it(inner: pytest.Pytester, kind: str) -> None:
    source, said = UNSEEN[kind]
    inner.makepyfile(test_unseen=f"import socket, threading, time\n\ndef test_it():\n    {source}\n")
    result = inner.runpytest("-m", "not e2e")
    result.assert_outcomes(passed=1, errors=1)  # at teardown
    result.stdout.fnmatch_lines([f"*test_unseen.py::test_it is a fast test but {said}*"])


def test_e2e_is_marked_by_mark_by_server_fixture_and_by_postgres(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_classified="""
import pytest

def test_fast():
    pass

@pytest.mark.e2e
def test_marked():
    pass

def test_with_a_server(tiers_inner_server):
    pass

@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_on_both_databases(database_url):
    pass
"""
    )
    fast = inner.runpytest("-m", "not e2e", "--collect-only", "-q")
    fast.stdout.fnmatch_lines(["*::test_fast", "*::test_on_both_databases[[]sqlite[]]", "2/5 tests collected*"])
    e2e = inner.runpytest("-m", "e2e", "--collect-only", "-q")
    e2e.stdout.fnmatch_lines(
        ["*::test_marked", "*::test_with_a_server", "*::test_on_both_databases[[]postgres[]]", "3/5 tests collected*"]
    )


@pytest.mark.e2e  # its inner test really connects: outside the inner tripwire, the outer one would trip
def test_an_e2e_test_may_open_sockets_start_processes_and_sleep(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_e2e="""
import socket, subprocess, sys, time
import pytest

pytestmark = pytest.mark.e2e

def test_it():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        socket.create_connection(server.getsockname(), timeout=1).close()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    time.sleep(0.01)
"""
    )
    inner.runpytest("-m", "e2e").assert_outcomes(passed=1)


def test_an_unregistered_marker_is_an_error(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_typo="import pytest\n\n@pytest.mark.e2ee\ndef test_it():\n    pass\n")
    result = inner.runpytest()
    result.stdout.fnmatch_lines(["*'e2ee' not found in `markers` configuration option*"])
    assert result.ret != 0


def test_no_test_module_imports_another() -> None:
    """What several modules share lives in tests/support/."""
    offenders = []
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            offenders += [f"{path.name} imports {name}" for name in names if name.startswith("tests.test_")]
    assert offenders == []
