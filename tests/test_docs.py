"""The documentation stays true to the code: error table, variables, the README's commands."""

from __future__ import annotations

import re
from pathlib import Path

from bot.desk.errors import catalogue_markdown

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_error_table_is_the_catalogue() -> None:
    table = re.search(r"<!-- errors:start -->\n(.*)<!-- errors:end -->", README, re.S)
    assert table is not None
    assert table.group(1) == catalogue_markdown(), "regenerate with: python -m bot errors"


PER_APP_ONLY = {"LABEL"}  # DESK_<APP>_LABEL has no plain DESK_LABEL to fall back to


def test_every_variable_the_code_reads_is_documented() -> None:
    sources = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "bot").rglob("*.py"))
    names = set(re.findall(r'"((?:DESK|SLACK|DIGEST|REDIS|DATABASE|WEB|LOG|METRICS)_[A-Z_]+|PORT|HOST)"', sources))
    # A Desk app's variables are read as var("KEY"): DESK_KEY, or DESK_<APP>_KEY with DESK_APPS.
    per_app = set(re.findall(r'var\("([A-Z_]+)"\)', sources))
    assert {"SDKAPPID", "SECRET_KEY", "REGION", "LABEL"} <= per_app
    for key in per_app:
        assert f"`DESK_<APP>_{key}`" in README, f"DESK_<APP>_{key} is not in the README's per-app table"
    # One app's own variables (the demo's DESK_PROD_LABEL) are documented by the DESK_<APP>_ row.
    names = {n for n in names if not any(n.endswith(f"_{key}") and n != f"DESK_{key}" for key in per_app)}
    names |= {f"DESK_{key}" for key in per_app - PER_APP_ONLY}
    assert {"DESK_SDKAPPID", "DESK_APPS", "SLACK_BOT_TOKEN", "PORT"} <= names
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    for name in names:
        assert f"`{name}`" in README, f"{name} is not in the README's configuration tables"
        assert f"{name}=" in example, f"{name} is not in .env.example"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = ci.strip().splitlines()[-1]
    assert command in README
    assert "apt-get install" in ci and "redis-server" in ci and "postgresql" in ci


def test_procfile_serves_both_modes() -> None:
    procfile = (ROOT / "Procfile").read_text(encoding="utf-8")
    assert "web: python -m bot serve" in procfile and "worker: python -m bot socket" in procfile


def test_procfile_migrates_in_the_release_phase_and_the_readme_says_so() -> None:
    from bot.cli import build_parser

    lines = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text(encoding="utf-8").splitlines())
    assert lines["release"] == "python -m bot migrate"
    assert build_parser().parse_args(lines["release"].split()[3:]).command == "migrate"
    assert "release: python -m bot migrate" in README and "app.json" in README
