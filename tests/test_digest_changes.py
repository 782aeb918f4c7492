"""Change detection between a channel's previous digest and the current list."""

from __future__ import annotations

from bot.desk.changes import diff
from bot.desk.models import Language, LanguageList


def listing(*items: tuple[str, bool]) -> LanguageList:
    return LanguageList.build([Language.of(tag, is_default) for tag, is_default in items], fetched_at=1.7e9)


def tags(langs: tuple[Language, ...]) -> list[str]:
    return [lang.tag for lang in langs]


def test_first_digest_has_nothing_to_compare() -> None:
    changes = diff(None, listing(("en", True)))
    assert changes.first and not changes.none and not changes.default_changed
    assert changes.default_after is not None and changes.default_after.tag == "en"


def test_identical_lists_mean_no_changes_even_when_fetched_later() -> None:
    before = listing(("en", True), ("ja", False))
    after = LanguageList.build(list(before.languages), fetched_at=1.8e9)
    changes = diff(before, after)
    assert changes.none
    assert not changes.added and not changes.removed and not changes.default_changed


def test_order_alone_is_not_a_change() -> None:
    assert diff(listing(("en", True), ("ja", False)), listing(("ja", False), ("en", True))).none


def test_added_and_removed_keep_desk_order() -> None:
    before = listing(("en", True), ("ja", False), ("vi", False))
    changes = diff(before, listing(("en", True), ("fr", False), ("de", False)))
    assert tags(changes.added) == ["fr", "de"]
    assert tags(changes.removed) == ["ja", "vi"]
    assert not changes.default_changed and not changes.none


def test_default_moving_between_existing_languages() -> None:
    changes = diff(listing(("en", True), ("ja", False)), listing(("en", False), ("ja", True)))
    assert changes.default_changed and not changes.added and not changes.removed
    assert changes.default_before is not None and changes.default_before.tag == "en"
    assert changes.default_after is not None and changes.default_after.tag == "ja"


def test_default_appearing_and_disappearing() -> None:
    assert diff(listing(("en", False)), listing(("en", True))).default_changed
    gone = diff(listing(("en", True)), listing(("en", False)))
    assert gone.default_changed and gone.default_after is None


def test_tags_are_opaque_so_a_regional_variant_is_a_swap() -> None:
    changes = diff(listing(("zh", True)), listing(("zh-CN", True)))
    assert tags(changes.added) == ["zh-CN"] and tags(changes.removed) == ["zh"]
    assert changes.default_changed


def test_the_empty_default_tag_is_a_language_like_any_other() -> None:
    changes = diff(listing(("", True)), listing(("", True), ("en", False)))
    assert tags(changes.added) == ["en"] and not changes.default_changed


def test_everything_removed() -> None:
    changes = diff(listing(("en", True), ("ja", False)), listing())
    assert tags(changes.removed) == ["en", "ja"] and changes.default_changed


def test_round_trip_through_the_stored_snapshot_keeps_the_comparison() -> None:
    before = listing(("en", True), ("zh-TW", False))
    assert diff(LanguageList.from_json(before.to_json()), before).none
