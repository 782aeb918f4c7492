"""The schema's migrations (bot/migrations/, `python -m bot migrate`) on real SQLite files and a real
PostgreSQL server: an empty database and one the earlier version made end at the same schema, the
one the stores declare; the earlier rows survive; the single-app tables are adopted once; several
processes migrating at once end well; and a server refuses a database whose schema is behind."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import bot.digests.store
import bot.management.store
import bot.watch.store
from bot.database import (
    connect,
    current_revision,
    head_from_scripts,
    head_revision,
    metadata,
    migrate,
    open_database,
    stored_revision,
)
from bot.digests.store import DigestStore, PostState
from tests.support.databases import create_postgres_database, drop_postgres_database, migrated
from tests.support.earlier_schema import earlier
from tests.support.served import clean_env, run_bot
from tests.support.single_app_schema import SHOWN, create_single_app_schema

BOTH = pytest.mark.parametrize("empty_database_url", ["sqlite", "postgres"], indirect=True)
STORES = (bot.digests.store, bot.management.store, bot.watch.store)  # their tables are on `metadata`


def schema_of(engine: sa.Engine) -> dict[str, Any]:
    """Every table's columns (name, type, nullable), primary key and indexes, as the database says."""
    inspector = sa.inspect(engine)
    schema: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        columns = [(c["name"], str(c["type"]).upper(), c["nullable"]) for c in inspector.get_columns(table)]
        indexes = sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table))
        primary = tuple(inspector.get_pk_constraint(table)["constrained_columns"])
        schema[table] = {"columns": sorted(columns), "primary key": primary, "indexes": indexes}
    return schema


def differences_from_the_code(engine: sa.Engine) -> list[Any]:
    """What Alembic finds different between the database and the tables the stores declare."""
    assert {table.name for table in metadata.sorted_tables} >= {"digest_app_posts", "watch_alerts", "language_changes"}
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        found = compare_metadata(context, metadata)
    return [d for d in found if not (d[0] == "remove_table" and d[1].name == "alembic_version")]


def make_earlier_database(url: str) -> sa.Engine:
    """The tables as the version before migrations created them, with a row in each kind of table."""
    engine = connect(url)
    earlier.create_all(engine)
    t = earlier.tables
    with engine.begin() as conn:
        conn.execute(t["digest_app_subscriptions"].insert().values(
            channel_id="C1", app="prod", schedule="daily 09:00 UTC", enabled=True, effective_at=1.0,
            created_at=1.0, updated_at=1.0, created_by="U0ALICE"))
        conn.execute(t["language_change_requests"].insert().values(
            id="r1", app="prod", action="add", tag="vi", requested_by="U0BOB", requested_at=2.0, expires_at=3.0,
            state="done", decided_by="U0ALICE", decided_at=2.5, outcome="applied"))
        conn.execute(t["language_changes"].insert().values(
            at=2.5, who="U0ALICE", app="prod", sdkappid=1400000001, action="add", tag="vi", result="applied",
            request_id="r1"))
        conn.execute(t["watch_subscriptions"].insert().values(
            channel_id="C2", app="prod", created_at=4.0, created_by="U0ALICE", enabled=True))
        conn.execute(t["watch_state"].insert().values(
            app="prod", list_json='{"languages": []}', list_since=7, failures=0, updated_at=5.0))
    return engine


@BOTH
def test_an_empty_database_migrates_to_the_schema_the_stores_declare(empty_database_url: str) -> None:
    engine = connect(empty_database_url)
    assert current_revision(engine) is None
    assert stored_revision(engine) is None
    assert migrate(engine) is None  # started from nothing
    assert current_revision(engine) == head_revision()
    assert stored_revision(engine) == head_revision()  # what open_database compares without Alembic
    assert differences_from_the_code(engine) == []
    assert migrate(engine) == head_revision()  # a second run has nothing to do
    engine.dispose()


@BOTH
def test_a_database_of_the_earlier_version_ends_at_the_same_schema_with_its_rows(
    empty_database_url: str, tmp_path: Path
) -> None:
    engine = make_earlier_database(empty_database_url)
    assert differences_from_the_code(engine) != []  # the widths differ before (watch: 32 characters)
    migrate(engine, default_app="prod")
    assert differences_from_the_code(engine) == []
    fresh = migrated(f"sqlite:///{tmp_path / 'fresh.db'}") if engine.dialect.name == "sqlite" else None
    if fresh is not None:
        assert schema_of(engine) == schema_of(fresh)  # the same, table by table, as an empty database's
        fresh.dispose()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT created_by FROM digest_app_subscriptions")).scalar_one() == "U0ALICE"
        assert conn.execute(sa.text("SELECT requested_by, outcome FROM language_change_requests")).one() == (
            "U0BOB", "applied")
        assert conn.execute(sa.text("SELECT who, tag, request_id FROM language_changes")).one() == (
            "U0ALICE", "vi", "r1")
        assert conn.execute(sa.text("SELECT channel_id FROM watch_subscriptions")).scalar_one() == "C2"
        assert conn.execute(sa.text("SELECT list_since FROM watch_state")).scalar_one() == 7
    # What the widths are for: a 64-character app name now fits everywhere (PostgreSQL enforces it).
    long_app = "a" * 64
    from bot.watch.store import WatchStore

    WatchStore(engine).put_watch("C" + "9" * 40, long_app, "U0ALICE", 6.0)
    assert WatchStore(engine).get_watch("C" + "9" * 40, long_app) is not None
    engine.dispose()


@pytest.mark.parametrize("empty_database_url", ["postgres"], indirect=True)
def test_postgres_empty_and_earlier_databases_end_with_the_same_schema(
    empty_database_url: str, postgres_url: str
) -> None:
    """On PostgreSQL the comparison above is with the code; here, table by table, with each other."""
    other = create_postgres_database(postgres_url)
    try:
        empty, earlier_made = connect(empty_database_url), make_earlier_database(other)
        migrate(empty)
        migrate(earlier_made, default_app="prod")
        assert schema_of(empty) == schema_of(earlier_made)
        empty.dispose()
        earlier_made.dispose()
    finally:
        drop_postgres_database(postgres_url, other)


@BOTH
def test_the_single_app_tables_become_the_default_apps_once(empty_database_url: str) -> None:
    engine = create_single_app_schema(empty_database_url)
    migrate(engine, default_app="prod")
    store = DigestStore(engine, ("prod", "staging"))
    c1, c2 = store.subscriptions("prod")
    assert (c1.channel_id, c1.app, c1.schedule, c1.enabled, c1.effective_at, c1.created_by) == (
        "C1", "prod", "daily 09:00 UTC", True, 10.0, None
    )
    assert (c2.enabled, c2.hint, c2.disabled_reason, c2.created_at, c2.updated_at) == (
        False, "invite the bot", "Slack says is_archived", 5.0, 30.0
    )
    assert store.subscriptions("staging") == []
    assert store.get_snapshot("C1", "prod") == SHOWN
    posted = store.get_post("C1", "prod", "2026-03-30")
    assert posted is not None and (posted.state, posted.ts, posted.shown) == (
        PostState.POSTED, "1774861200.000100", SHOWN.to_json()
    )
    assert store.get_post("C2", "prod", "2026-W14").state is PostState.SKIPPED  # type: ignore[union-attr]
    # A period the single-app version posted is not posted again: its claim is already settled.
    assert store.claim("C1", "prod", "2026-03-30", "new", now=99.0, lease=600.0, scheduled_for=38.0).value == "done"
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM digest_subscriptions")).scalar_one() == 2  # kept
    store.delete_subscription("C1", "prod")  # stopped after the adoption
    migrate(engine, default_app="prod")  # the next release
    assert store.get_subscription("C1", "prod") is None  # not brought back by the old row
    engine.dispose()


@BOTH
def test_single_app_rows_the_earlier_version_adopted_are_not_adopted_again(empty_database_url: str) -> None:
    engine = create_single_app_schema(empty_database_url)
    earlier.create_all(engine)  # the earlier version made the new tables and adopted at boot…
    with engine.begin() as conn:  # …then C1's digest was stopped
        conn.execute(earlier.tables["digest_migrations"].insert().values(
            name="legacy-tables", detail="adopted by prod", done_at=1.0))
    migrate(engine, default_app="prod")
    assert DigestStore(engine, ("prod",)).subscriptions("prod") == []
    engine.dispose()


@pytest.mark.e2e
def test_sqlite_migrated_by_several_processes_at_once_adopts_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    create_single_app_schema(url).dispose()  # something to adopt, which must happen once
    outputs = migrate_at_once(url, tmp_path, processes=4)
    assert sum("it was empty" in out for out in outputs) == 1, outputs
    assert sum("nothing to do" in out for out in outputs) == 3, outputs
    engine = connect(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM digest_app_subscriptions")).scalar_one() == 2
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_threads_of_one_process_migrating_at_once_all_succeed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'threads.db'}"
    engines = [connect(url) for _ in range(4)]
    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def run(engine: sa.Engine) -> None:
        barrier.wait()
        try:
            migrate(engine)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert current_revision(engines[0]) == head_revision()
    for engine in engines:
        engine.dispose()


def migrate_at_once(url: str, cwd: Path, processes: int) -> list[str]:
    """`python -m bot migrate` in several processes started together; their outputs (each exited 0)."""
    env = clean_env(DATABASE_URL=url, DESK_SANDBOX="1")
    started = [
        subprocess.Popen([sys.executable, "-m", "bot", "migrate"], cwd=cwd, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    outputs = [process.communicate(timeout=60) for process in started]
    assert [process.returncode for process in started] == [0] * processes, outputs
    for _, stderr in outputs:
        assert "Traceback" not in stderr
    return [out for out, _ in outputs]


@pytest.mark.parametrize("empty_database_url", ["postgres"], indirect=True)
def test_two_migrate_processes_at_once_on_postgres_end_well(empty_database_url: str, tmp_path: Path) -> None:
    outputs = migrate_at_once(empty_database_url, tmp_path, processes=2)
    assert sum("it was empty" in out for out in outputs) == 1, outputs  # one migrated under the lock…
    assert sum("nothing to do" in out for out in outputs) == 1, outputs  # …the other waited, found it done
    engine = connect(empty_database_url)
    assert current_revision(engine) == head_revision()
    assert differences_from_the_code(engine) == []
    engine.dispose()


@pytest.mark.parametrize("empty_database_url", ["postgres"], indirect=True)
def test_serve_against_an_unmigrated_database_exits_2_with_one_line(empty_database_url: str, tmp_path: Path) -> None:
    env = clean_env(DATABASE_URL=empty_database_url, DESK_SANDBOX="1", SLACK_SIGNING_SECRET="s" * 32)
    from bot.sandbox.slack_emulator import FakeSlack
    from tests.support.slack_harness import BOT_TOKEN

    with FakeSlack(token=BOT_TOKEN) as slack:
        env.update(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=slack.api_url)
        done = run_bot("serve", cwd=tmp_path, env=env)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("configuration error: DATABASE_URL: the database has no schema of this version")
    assert "python -m bot migrate" in lines[0]
    assert "postgres@" not in done.stderr  # the URL is not repeated


@pytest.mark.parametrize("empty_database_url", ["postgres"], indirect=True)
def test_a_database_one_migration_behind_is_refused_and_migrate_brings_it_current(empty_database_url: str) -> None:
    from alembic import command

    from bot.database import SchemaBehind, _alembic_config

    engine = connect(empty_database_url)
    with engine.connect() as conn:
        command.upgrade(_alembic_config(conn), "0005_approvals")
        conn.commit()
    with pytest.raises(SchemaBehind, match=r"behind \(revision 0005_approvals, this version needs 0006"):
        open_database(empty_database_url)
    assert migrate(engine) == "0005_approvals"
    open_database(empty_database_url).dispose()
    engine.dispose()


def test_sqlite_migrates_itself_when_the_bot_opens_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    engine = open_database(url)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_the_head_read_from_the_scripts_is_alembic_s() -> None:
    """open_database compares the stored revision with `head_from_scripts()`, so that a process whose
    database is current never imports Alembic; it must name the same head Alembic does."""
    assert head_from_scripts() == head_revision()


@pytest.mark.e2e
def test_opening_a_current_database_does_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    open_database(url).dispose()  # migrates: Alembic is imported here
    opened_again = (
        "import sys; from bot.database import open_database; "
        f"open_database({url!r}).dispose(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))"
    )
    done = subprocess.run([sys.executable, "-c", opened_again], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "[]"
