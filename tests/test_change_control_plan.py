"""Fast tests of change control's pure parts: the declared state parsed from a TOML document, and
the plan worked out from it and a readiness report (no servers, no files)."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.changecontrol.declared import DeclaredApp, parse_declared
from bot.changecontrol.plan import AppPlan, ChangeKind, plan_changes, plan_lines
from bot.config import ConfigError
from bot.desk.languages import ADVANCED_EDITION_LANGUAGE_LIMIT, SUPPORTED_TAGS
from bot.desk.models import Language
from bot.desk.readiness import FaqCount, ReadinessReport, ReadinessRules, RobotSettings

READY = RobotSettings(welcome_card_enabled=True, welcome_card_questions=("Hi?",), fallback_message="Sorry.",
                      to_agent_enabled=True, welcome_card_title="Hello")


def report(*rows: tuple[str, int], default: str = "en", settings: dict[str, RobotSettings] | None = None,
           ) -> ReadinessReport:
    """A report of `rows` (tag, live FAQ questions), every check answered."""
    settings = settings or {}
    return ReadinessReport.build(
        [Language.of(tag, tag == default) for tag, _ in rows],
        [FaqCount(count, count) for _, count in rows],
        [settings.get(tag, READY) for tag, _ in rows],
        fetched_at=1.0,
    )


def test_a_whole_file_becomes_the_declared_apps() -> None:
    document = tomllib.loads("""
        [prod]
        languages = ["en", "ja"]
        default = "en"
        [prod.require]
        faq_ratio = 0.8
        welcome_card = false
        [prod.settings.ja]
        fallback_message = "  すみません  "
        welcome_card = true
        welcome_card_questions = ["注文はどこ？", "担当者と話す"]
        to_agent = false
        [staging]
        languages = ["", "en"]
    """)
    state = parse_declared(document, ["prod", "staging"])
    prod = state.app("prod")
    assert prod is not None and prod.languages == ("en", "ja") and prod.default == "en"
    assert prod.rules == ReadinessRules(faq_ratio=0.8, fallback=True, welcome_card=False)
    assert prod.settings == {"ja": {
        "fallback_message": "すみません", "welcome_card_enabled": True,
        "welcome_card_questions": ("注文はどこ？", "担当者と話す"), "to_agent_enabled": False,
    }}
    staging = state.app("staging")
    assert staging is not None and staging.languages == ("", "en") and staging.rules is None
    assert state.app("eu") is None


def test_an_app_s_table_that_is_not_a_table_names_its_key() -> None:
    with pytest.raises(ConfigError, match=r"^desk-languages.toml: prod: is not a table"):
        parse_declared({"prod": ["en"]}, ["prod"])


def test_in_sync_when_desk_has_what_is_declared() -> None:
    declared = DeclaredApp("prod", ("en", "ja"), "en", ReadinessRules(), {"ja": {"fallback_message": "Sorry."}})
    assert plan_changes(declared, report(("en", 10), ("ja", 6))) == ()


def test_the_default_language_is_never_removed_by_apply() -> None:
    (change,) = plan_changes(DeclaredApp("prod", ("ja",)), report(("en", 0), ("ja", 0)))
    assert change.kind is ChangeKind.REMOVE and change.tag == "en" and not change.applies
    assert "is the default language" in (change.why_not or "")


def test_additions_fit_only_as_far_as_the_removals_that_can_be_made() -> None:
    # 5 languages; vi has FAQ questions (stays), fil has none (goes): one of the two additions fits.
    current = report(("en", 10), ("zh", 9), ("ja", 9), ("vi", 3), ("fil", 0))
    changes = plan_changes(DeclaredApp("prod", ("en", "zh", "ja", "id", "zh-TW")), current)
    summary = [(c.kind.value, c.tag, c.applies) for c in changes]
    assert summary == [("remove", "vi", False), ("remove", "fil", True), ("add", "id", True), ("add", "zh-TW", False)]


def test_settings_of_a_language_to_be_added_wait_for_it() -> None:
    declared = DeclaredApp("prod", ("en", "vi"), settings={"vi": {"fallback_message": "Xin lỗi."}})
    (add, setting) = plan_changes(declared, report(("en", 5)))
    assert add.kind is ChangeKind.ADD and add.applies
    assert setting.kind is ChangeKind.SETTINGS and setting.applies and setting.old is None
    assert setting.text == '~ vi fallback message: (once it is added) -> "Xin lỗi."'


def test_a_requirement_a_declared_setting_meets_is_not_drift_and_one_it_does_not_is() -> None:
    off = RobotSettings(welcome_card_enabled=False, welcome_card_questions=(), fallback_message="",
                        to_agent_enabled=True)
    current = report(("en", 10), ("vi", 8), ("fil", 8), settings={"vi": off, "fil": off})
    declared = DeclaredApp("prod", ("en", "vi", "fil"), rules=ReadinessRules(),
                           settings={"vi": {"fallback_message": "Xin lỗi.", "welcome_card_enabled": True,
                                            "welcome_card_questions": ("Đơn hàng?",)}})
    texts = [change.text for change in plan_changes(declared, current)]
    assert texts[:3] == ['~ vi fallback message: (empty) -> "Xin lỗi."', "~ vi welcome card: off -> on",
                         "~ vi welcome card questions: none -> Đơn hàng?"]
    assert texts[3:] == [
        "! fil has no fallback message (declare a fallback message under [settings.fil], or set it in the console)",
        "! fil has the welcome card off (declare a welcome card with questions under [settings.fil], or set it in "
        "the console)",
    ]


def test_desk_text_stays_data_in_the_plan() -> None:
    hostile = "<!channel> *now* `rm` <https://evil.example|click>"
    settings = {"ja": RobotSettings(True, ("Hi?",), hostile, True)}
    (change,) = plan_changes(DeclaredApp("prod", ("en", "ja"), settings={"ja": {"fallback_message": "Sorry."}}),
                             report(("en", 3), ("ja", 3), settings=settings))
    assert change.old == hostile and hostile in change.text  # verbatim: the terminal shows it as Desk has it
    lines = plan_lines(AppPlan("prod", 1, True, (change,)), "prod")
    assert lines == ["prod: 1 difference, 1 for apply", f'  {change.text}']


TAGS = st.sampled_from(SUPPORTED_TAGS)


@given(
    current=st.lists(st.tuples(TAGS, st.integers(0, 3)), min_size=1, max_size=5, unique_by=lambda row: row[0]),
    declared=st.lists(TAGS, min_size=1, max_size=5, unique=True),
)
def test_what_apply_would_make_stays_within_the_edition_and_moves_toward_the_file(
    current: list[tuple[str, int]], declared: list[str]
) -> None:
    changes = plan_changes(DeclaredApp("prod", tuple(declared)), report(*current, default=current[0][0]))
    tags = [tag for tag, _ in current]
    for change in changes:  # removals first, then additions: the order apply makes them in
        if change.applies and change.kind is ChangeKind.REMOVE:
            assert change.tag not in declared and change.tag != current[0][0] and dict(current)[change.tag] == 0
            tags.remove(change.tag)
        elif change.applies and change.kind is ChangeKind.ADD:
            assert change.tag in declared and change.tag not in tags
            tags.append(change.tag)
        assert len(tags) <= ADVANCED_EDITION_LANGUAGE_LIMIT
    # Whatever apply cannot make is said, with why.
    left = set(declared) ^ set(tags)
    unmade = {change.tag for change in changes if not change.applies}
    assert left <= unmade and all(change.why_not for change in changes if not change.applies)


def test_a_change_alert_says_only_when_the_change_makes_or_ends_a_drift() -> None:
    from pathlib import Path

    from bot.changecontrol.declared import DeclaredState
    from bot.changecontrol.messages import drift_alert_line
    from bot.desk.models import LanguageList

    declared = DeclaredApp("prod", ("en", "ja"), default="en")
    line = drift_alert_line(DeclaredState(Path("desk-languages.toml"), {"prod": declared}))

    def listed(*tags: str, default: str = "en") -> LanguageList:
        return LanguageList.build([Language.of(tag, tag == default) for tag in tags], 1.0)

    in_sync, plus_vi, plus_zh = listed("en", "ja"), listed("en", "ja", "vi"), listed("en", "ja", "vi", "zh")
    assert line("prod", in_sync, plus_vi) == (
        ":warning: Now differs from `desk-languages.toml`: `- vi`. `plan` shows what `apply` would change.")
    assert line("prod", plus_vi, plus_zh) is None  # drifted before and after: the alert's own lines say it
    assert line("prod", plus_zh, in_sync) == ":white_check_mark: Back in sync with `desk-languages.toml`."
    assert line("prod", in_sync, listed("en", "ja", default="ja")) is not None  # the default moved
    assert line("staging", in_sync, plus_vi) is None  # not declared
