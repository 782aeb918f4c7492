"""The import-linter contracts: kept by the code as it is, and broken by an upward import or a cycle.

The contracts live in pyproject.toml and the test command runs `lint-imports`; this test shows
that they really catch what they promise to (layers, the Desk client without Slack, no sandbox and
no tests in production code, no cycles), on a copy of the tree with one bad import added.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = shutil.which("lint-imports")


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    assert LINT_IMPORTS is not None
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": str(Path(sys.executable).parent)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    if LINT_IMPORTS is None:
        pytest.fail("lint-imports is not installed (pip install -e '.[dev]')")
    for part in ("bot", "handlers", "tests"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def add_import(module: Path, line: str) -> None:
    text = module.read_text()
    head, sep, rest = text.partition("from __future__ import annotations\n")
    module.write_text(head + sep + line + "\n" + rest)


@pytest.mark.e2e
def test_the_tree_keeps_every_contract(tree: Path) -> None:
    done = lint(tree)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.e2e
def test_an_upward_import_breaks_the_layers(tree: Path) -> None:
    add_import(tree / "bot" / "slack" / "grammar.py", "import handlers.commands  # noqa")
    done = lint(tree)
    assert done.returncode != 0
    assert "Layers point down" in done.stdout and "BROKEN" in done.stdout
    assert "bot.slack.grammar -> handlers.commands" in done.stdout


@pytest.mark.e2e
def test_the_desk_client_importing_slack_breaks_its_contract(tree: Path) -> None:
    add_import(tree / "bot" / "desk" / "client.py", "import slack_sdk  # noqa")
    done = lint(tree)
    assert done.returncode != 0
    assert "know nothing about Slack" in done.stdout and "bot.desk.client -> slack_sdk" in done.stdout


@pytest.mark.e2e
def test_a_cycle_between_sibling_modules_breaks_the_acyclic_contract(tree: Path) -> None:
    # bot.digests.service imports bot.digests.store; the reverse import closes a cycle.
    add_import(tree / "bot" / "digests" / "store.py", "import bot.digests.service  # noqa")
    done = lint(tree)
    assert done.returncode != 0
    assert "No import cycles" in done.stdout and "BROKEN" in done.stdout


@pytest.mark.e2e
def test_a_production_module_importing_the_sandbox_breaks_its_contract(tree: Path) -> None:
    add_import(tree / "bot" / "digests" / "service.py", "import bot.sandbox.desk_emulator  # noqa")
    done = lint(tree)
    assert done.returncode != 0
    assert "never import the sandbox" in done.stdout
    assert "bot.digests.service -> bot.sandbox.desk_emulator" in done.stdout


@pytest.mark.e2e
def test_production_code_importing_the_tests_breaks_its_contract(tree: Path) -> None:
    add_import(tree / "bot" / "sandbox" / "slack_emulator.py", "import tests.support.socket_mode_server  # noqa")
    done = lint(tree)
    assert done.returncode != 0
    assert "never imports the tests" in done.stdout
    assert "bot.sandbox.slack_emulator -> tests.support.socket_mode_server" in done.stdout


@pytest.mark.e2e
def test_the_desk_client_importing_bot_slack_breaks_its_contract(tree: Path) -> None:
    add_import(tree / "bot" / "desk" / "client.py", "import bot.slack.blocks  # noqa")
    done = lint(tree)
    assert done.returncode != 0
    assert "know nothing about Slack" in done.stdout
    assert "bot.desk.client -> bot.slack.blocks" in done.stdout
