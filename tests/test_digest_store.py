"""Digest storage on real databases (SQLite file, PostgreSQL server): tables, records, and the claim."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from bot.desk.models import Language, LanguageList
from bot.digests.store import Claim, DigestStore, PostState, create_db_engine
from tests.support.environment import BOTH_DATABASES

LEASE = 600.0
APP = "default"  # a store built without apps serves the one unnamed app


pytestmark = BOTH_DATABASES


@pytest.fixture
def store(database_url: str) -> Iterator[DigestStore]:
    digest_store = DigestStore.from_url(database_url)
    yield digest_store
    digest_store.engine.dispose()


def test_tables_are_created_on_first_use(database_url: str) -> None:
    engine = create_db_engine(database_url)
    assert not sa.inspect(engine).get_table_names()
    DigestStore(engine).get_subscription("C1", APP)
    tables = set(sa.inspect(engine).get_table_names())
    assert tables == {"digest_app_subscriptions", "digest_app_snapshots", "digest_app_posts", "digest_migrations"}
    engine.dispose()


def test_many_processes_creating_the_tables_at_once_all_succeed(database_url: str) -> None:
    # Separate engines (separate connections) racing on an empty database, as dynos at boot.
    stores = [DigestStore.from_url(database_url) for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def first_use(digest_store: DigestStore) -> None:
        barrier.wait()
        try:
            digest_store.put_subscription(f"C{id(digest_store)}", APP, "daily 09:00 UTC", 1.0)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=first_use, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(stores[0].enabled_subscriptions()) == len(stores)
    for digest_store in stores:
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
    stores = [DigestStore.from_url(database_url) for _ in range(contenders)]
    stores[0].ensure_tables()
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
