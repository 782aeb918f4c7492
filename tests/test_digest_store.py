"""Digest storage on real databases (SQLite file, PostgreSQL server): tables, records, and the claim."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from bot.database import connect
from bot.desk.models import Language, LanguageList
from bot.digests.store import Claim, DigestStore, PostState
from tests.support.environment import BOTH_DATABASES
from tests.support.single_app_schema import SHOWN

LEASE = 600.0
APP = "default"  # a store built without apps serves the one unnamed app


pytestmark = BOTH_DATABASES


@pytest.fixture
def store(database_url: str) -> Iterator[DigestStore]:
    digest_store = DigestStore(connect(database_url))
    yield digest_store
    digest_store.engine.dispose()


def test_subscriptions_create_replace_disable_and_delete(store: DigestStore) -> None:
    assert store.get_subscription("C1", APP) is None
    store.put_subscription("C1", APP, "daily 09:00 UTC", 100.0)
    store.set_hint("C1", APP, "invite the bot")
    store.put_subscription("C1", APP, "weekly mon 10:00 UTC", 200.0)  # replaces, clears the hint
    sub = store.get_subscription("C1", APP)
    assert sub is not None
    assert (sub.schedule, sub.enabled, sub.hint, sub.effective_at, sub.created_at) == (
        "weekly mon 10:00 UTC", True, None, 200.0, 100.0
    )
    store.set_hint("C1", APP, "invite the bot")
    store.clear_hint("C1", APP)
    assert store.get_subscription("C1", APP).hint is None  # type: ignore[union-attr]
    store.disable("C1", APP, "Slack says is_archived", 300.0)
    assert store.enabled_subscriptions() == []
    assert store.get_subscription("C1", APP).disabled_reason == "Slack says is_archived"  # type: ignore[union-attr]
    assert store.delete_subscription("C1", APP) is True
    assert store.delete_subscription("C1", APP) is False


def test_snapshots_round_trip(store: DigestStore) -> None:
    shown = LanguageList.build([Language.of("en", True), Language.of("zh-TW")], 1700000000.5)
    assert store.get_snapshot("C1", APP) is None
    store.put_snapshot("C1", APP, shown, "2026-03-30", 1.0)
    assert store.get_snapshot("C1", APP) == shown
    later = LanguageList.build([Language.of("ja", True)], 1700000100.0)
    store.put_snapshot("C1", APP, later, "2026-03-31", 2.0)
    assert store.get_snapshot("C1", APP) == later


def claim(store: DigestStore, owner: str, now: float, period: str = "2026-03-30") -> Claim:
    return store.claim("C1", APP, period, owner, now=now, lease=LEASE, scheduled_for=now)


def test_claim_lifecycle(store: DigestStore) -> None:
    assert claim(store, "a", 1000.0) is Claim.NEW
    assert claim(store, "b", 1001.0) is Claim.BUSY
    store.release("C1", APP, "2026-03-30", "b", "not b's to release")  # ignored: b does not hold it
    assert store.get_post("C1", APP, "2026-03-30").state is PostState.CLAIMED  # type: ignore[union-attr]
    store.release("C1", APP, "2026-03-30", "a", "Slack refused the post: not_in_channel")
    assert claim(store, "b", 1002.0) is Claim.RETRY
    record = store.get_post("C1", APP, "2026-03-30")
    assert record is not None and (record.owner, record.attempts, record.state) == ("b", 2, PostState.CLAIMED)
    assert record.error == "Slack refused the post: not_in_channel"
    store.mark_posted("C1", APP, "2026-03-30", "1711789200.000100", 1003.0)
    assert claim(store, "c", 1004.0) is Claim.DONE
    assert store.get_post("C1", APP, "2026-03-30").ts == "1711789200.000100"  # type: ignore[union-attr]


def test_a_stale_claim_is_taken_over_once(store: DigestStore) -> None:
    assert claim(store, "crashed", 1000.0) is Claim.NEW
    assert claim(store, "b", 1000.0 + LEASE - 1) is Claim.BUSY
    assert claim(store, "b", 1000.0 + LEASE + 1) is Claim.TAKEOVER
    assert claim(store, "c", 1000.0 + LEASE + 2) is Claim.BUSY  # b's claim is fresh again
    store.skip("C1", APP, "2026-03-30", "b", "could not check the history")
    assert claim(store, "c", 1000.0 + 3 * LEASE) is Claim.DONE
    assert store.get_post("C1", APP, "2026-03-30").state is PostState.SKIPPED  # type: ignore[union-attr]


def test_latest_post_and_shown_list(store: DigestStore) -> None:
    shown = LanguageList.build([Language.of("en", True)], 5.0)
    claim(store, "a", 1000.0, "2026-03-29")
    store.mark_posted("C1", APP, "2026-03-29", "1.000001", 1001.0)
    claim(store, "a", 2000.0, "2026-03-30")
    store.set_shown("C1", APP, "2026-03-30", "a", shown)
    latest = store.latest_post("C1", APP)
    assert latest is not None and latest.period == "2026-03-30" and latest.shown == shown.to_json()


@pytest.mark.parametrize("contenders", [8])
def test_only_one_of_many_concurrent_claimers_wins_each_period(database_url: str, contenders: int) -> None:
    """Separate engines (connections) race for the same periods, for each kind of claim."""
    stores = [DigestStore(connect(database_url)) for _ in range(contenders)]
    periods = [f"2026-04-{day:02d}" for day in range(1, 16)]
    # Prepare one third released, one third stale claims, one third untouched.
    for index, period in enumerate(periods):
        if index % 3 == 1:
            assert claim(stores[0], "setup", 10.0, period) is Claim.NEW
            stores[0].release("C1", APP, period, "setup", "Slack refused the post")
        elif index % 3 == 2:
            assert claim(stores[0], "setup", 10.0, period) is Claim.NEW  # stale at now=10_000
    wins: Counter[str] = Counter()
    kinds: dict[str, set[Claim]] = {period: set() for period in periods}
    lock = threading.Lock()
    barrier = threading.Barrier(contenders)

    def contend(index: int) -> None:
        barrier.wait()
        for period in periods:
            result = claim(stores[index], f"p{index}", 10_000.0, period)
            with lock:
                kinds[period].add(result)
                if result in (Claim.NEW, Claim.RETRY, Claim.TAKEOVER):
                    wins[period] += 1

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(wins[period] == 1 for period in periods), wins
    expected = {0: Claim.NEW, 1: Claim.RETRY, 2: Claim.TAKEOVER}
    for index, period in enumerate(periods):
        assert expected[index % 3] in kinds[period]
    for digest_store in stores:
        digest_store.engine.dispose()


# --- several apps --------------------------------------------------------------------------------

APPS = ("prod", "staging")


@pytest.fixture
def apps_store(database_url: str) -> Iterator[DigestStore]:
    digest_store = DigestStore(connect(database_url), apps=APPS)
    yield digest_store
    digest_store.engine.dispose()


def test_one_channel_has_one_subscription_per_app(apps_store: DigestStore) -> None:
    store = apps_store
    store.put_subscription("C1", "prod", "daily 09:00 UTC", 100.0, "U0ALICE")
    store.put_subscription("C1", "staging", "weekly mon 09:00 UTC", 110.0)
    store.put_subscription("C2", "staging", "daily 10:00 UTC", 120.0, "U0BOB")
    assert store.get_subscription("C1", "prod").schedule == "daily 09:00 UTC"  # type: ignore[union-attr]
    assert store.get_subscription("C1", "staging").schedule == "weekly mon 09:00 UTC"  # type: ignore[union-attr]
    assert [(s.channel_id, s.created_by, s.created_at) for s in store.subscriptions("staging")] == [
        ("C1", None, 110.0),
        ("C2", "U0BOB", 120.0),
    ]
    store.put_subscription("C1", "prod", "daily 11:00 UTC", 200.0)  # replaced without a user: still Alice's
    assert store.get_subscription("C1", "prod").created_by == "U0ALICE"  # type: ignore[union-attr]
    store.put_subscription("C1", "prod", "daily 12:00 UTC", 300.0, "U0CAROL")  # Carol set up the current one
    replaced = store.get_subscription("C1", "prod")
    assert replaced is not None and (replaced.created_by, replaced.created_at) == ("U0CAROL", 100.0)
    store.disable("C2", "staging", "Slack says is_archived", 400.0)
    assert [s.channel_id for s in store.subscriptions("staging")] == ["C1", "C2"]  # paused ones listed too
    assert [(s.channel_id, s.app) for s in store.enabled_subscriptions()] == [("C1", "prod"), ("C1", "staging")]
    assert store.delete_subscription("C1", "staging") is True
    assert store.get_subscription("C1", "prod") is not None
    assert store.subscriptions("eu") == []


def test_snapshots_and_claims_are_per_app(apps_store: DigestStore) -> None:
    store = apps_store
    prod = LanguageList.build([Language.of("en", True)], 1.0)
    staging = LanguageList.build([Language.of("de", True)], 2.0)
    store.put_snapshot("C1", "prod", prod, "2026-03-30", 1.0)
    store.put_snapshot("C1", "staging", staging, "2026-W14", 2.0)
    assert (store.get_snapshot("C1", "prod"), store.get_snapshot("C1", "staging")) == (prod, staging)
    # The same channel and period for two apps: two claims, neither in the other's way.
    for app in APPS:
        assert store.claim("C1", app, "2026-03-30", app, now=1000.0, lease=LEASE, scheduled_for=1.0) is Claim.NEW
    store.mark_posted("C1", "prod", "2026-03-30", "1.000001", 1001.0)
    store.release("C1", "staging", "2026-03-30", "staging", "Slack refused the post: not_in_channel")
    records = store.get_posts([("C1", "prod", "2026-03-30"), ("C1", "staging", "2026-03-30"), ("C1", "eu", "x")])
    assert {key: r.state for key, r in records.items()} == {
        ("C1", "prod", "2026-03-30"): PostState.POSTED,
        ("C1", "staging", "2026-03-30"): PostState.RELEASED,
    }
    assert store.latest_post("C1", "staging").state is PostState.RELEASED  # type: ignore[union-attr]
    assert store.claim("C1", "staging", "2026-03-30", "b", now=1002.0, lease=LEASE, scheduled_for=1.0) is Claim.RETRY
    assert store.claim("C1", "prod", "2026-03-30", "b", now=1002.0, lease=LEASE, scheduled_for=1.0) is Claim.DONE


# --- rows of the unnamed app `default` ------------------------------------------------------------

def row_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            name: conn.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar_one()  # our table names
            for name in sorted(sa.inspect(conn).get_table_names())
        }


def test_rows_of_the_unnamed_app_default_are_adopted_once_default_is_not_an_app(database_url: str) -> None:
    single = DigestStore(connect(database_url))  # one app, named `default`
    single.put_subscription("C1", "default", "daily 09:00 UTC", 10.0, "U0ALICE")
    single.put_snapshot("C1", "default", SHOWN, "2026-03-30", 11.0)
    single.claim("C1", "default", "2026-03-30", "old", now=12.0, lease=LEASE, scheduled_for=9.0)
    single.mark_posted("C1", "default", "2026-03-30", "1.000001", 13.0)
    single.engine.dispose()

    named = DigestStore(connect(database_url), apps=("prod", "default"))  # `default` is an app: its rows stay its own
    assert not named.adopt_unnamed_app()
    assert named.subscriptions("prod") == [] and len(named.subscriptions("default")) == 1
    named.engine.dispose()

    store = DigestStore(connect(database_url), apps=APPS)
    assert store.adopt_unnamed_app()
    assert not store.adopt_unnamed_app()  # once: the next boot, or another process, finds it done
    adopted = store.get_subscription("C1", "prod")
    assert adopted is not None and (adopted.schedule, adopted.created_by, adopted.effective_at) == (
        "daily 09:00 UTC", "U0ALICE", 10.0
    )
    assert store.get_snapshot("C1", "prod") == SHOWN
    assert store.get_post("C1", "prod", "2026-03-30").ts == "1.000001"  # type: ignore[union-attr]
    assert store.get_subscription("C1", "default") is not None  # kept, for a rollback
    store.delete_subscription("C1", "prod")
    store.engine.dispose()
    later = DigestStore(connect(database_url), apps=APPS)
    assert not later.adopt_unnamed_app()
    assert later.get_subscription("C1", "prod") is None  # adopted once only
    assert row_counts(later.engine)["digest_app_subscriptions"] == 1  # only the kept `default` row
    later.engine.dispose()
