"""No mrkdwn injection: every message builder, fed hostile tags, labels, names and user text,
shows them as text. A `<!channel>`, `<@U…>`, `<#C…>` or `<https://…|…>` from outside data must not
survive as a live token in any text of the message — top-level fallback `text`, every block,
every nested element — so it can never ping a channel or person or disguise a link.

Tokens the bot composes itself (a mention of a known Slack user, a channel link, a `<!date>`)
stay live; the hostile inputs are recognisable (`evil`, or a broadcast) so only theirs count.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from slack_sdk import WebClient

from bot.changecontrol.declared import DeclaredApp
from bot.changecontrol.messages import drift_line, plan_message
from bot.changecontrol.plan import AppPlan, ChangeKind, PlannedChange
from bot.deps import DeskApp
from bot.desk import DeskClient, DeskError, InProcessCache, InProcessLimiter, LanguageList
from bot.desk.changes import Changes, diff
from bot.desk.errors import ErrorSpec, RetryClass, TransportCode, desk_error, transport_error
from bot.desk.models import Language
from bot.desk.readiness import FaqCount, ReadinessReport, RobotSettings
from bot.desk.usersig import UserSigSource
from bot.desk.writes import WriteAction, WriteOutcome, WriteStatus
from bot.digests import messages as digest_messages
from bot.digests.schedule import ScheduleError, parse_schedule
from bot.digests.store import PostRecord, PostState, Subscription
from bot.management import messages as change_messages
from bot.management.admins import AdminDirectory, AdminList
from bot.management.service import LanguageManager
from bot.management.store import AuditEntry, ChangeStore
from bot.slack import blocks
from bot.slack.blocks import RenderContext
from bot.watch import messages as watch_messages
from bot.watch.messages import SetUp
from handlers.answers import languages_reply
from handlers.home import readiness_line, without_share_button
from tests.support.databases import migrated

NOW = 1_700_000_000.0
ADMIN = "U0ADMIN"  # a known Slack user: the bot may mention them
HOSTILE = (
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@UEVIL1>",
    "<@WEVIL2>",
    "<#CEVIL3>",
    "<!subteam^SEVIL4>",
    "<https://evil.example|click>",
    "<http://evil.example>",
    "<mailto:x@evil.example|mail>",
)
# A token from the hostile input: anything naming "evil", or a broadcast the bot never sends.
HOSTILE_TOKEN = re.compile(r"<(?=[^<>]*evil|!channel|!here|!everyone)[^<>]*>", re.IGNORECASE)

hostile = st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=3)), min_size=1, max_size=4).map("".join)


def texts(value: Any) -> Iterator[str]:
    """Every "text" string anywhere in a message, a block or a view: top level and nested."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                yield item
            else:
                yield from texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from texts(item)


def assert_no_live_hostile_token(*messages: Any) -> None:
    for message in messages:
        found = [text for text in texts(message) if HOSTILE_TOKEN.search(text)]
        assert found == [], f"live tokens from outside text in {found}"


def spec(meaning: str, hint: str) -> ErrorSpec:
    return ErrorSpec(code=TransportCode.READ_TIMEOUT, meaning=meaning, hint=hint, retry=RetryClass.PERMANENT)


def cached(value: LanguageList | ReadinessReport | DeskError) -> InProcessCache[Any]:
    """A cache already holding `value` (a fresh answer, or a failure), so no Desk call is made."""
    cache: InProcessCache[Any] = InProcessCache(ttl=3600, stale_max=3600)

    def load() -> Any:
        if isinstance(value, DeskError):
            raise value
        return value

    cache.get(load)
    return cache


def desk_app(ctx: RenderContext, lst: LanguageList | DeskError, report: ReadinessReport | DeskError) -> DeskApp:
    client = DeskClient(
        sdkappid=ctx.sdkappid,
        identifier="administrator",
        usersig=UserSigSource(sdkappid=ctx.sdkappid, identifier="administrator", usersig="unused"),
        base_urls=["http://127.0.0.1:9"],  # never called: both caches answer
        limiter=InProcessLimiter(5),
        cache=cached(lst),
        readiness_cache=cached(report),
    )
    return DeskApp(name=ctx.app or "default", client=client, render=ctx)


@settings(max_examples=60, deadline=None)
@given(
    # never "vi": `remove vi` below must find it absent, or it would count vi's FAQ questions at Desk
    tags=st.lists(hostile.filter(lambda tag: tag != "vi"), min_size=1, max_size=4),
    names=st.lists(hostile, min_size=1, max_size=4),
    label=hostile,
    region=hostile,
    app=hostile,
    text=hostile,
    info=hostile,
)
def test_no_message_builder_lets_hostile_text_through_as_a_live_token(
    tags: list[str], names: list[str], label: str, region: str, app: str, text: str, info: str
) -> None:
    ctx = RenderContext(sdkappid=1400000001, region=region, label=label, app=app)
    plain = RenderContext(sdkappid=1400000002, region="Singapore")
    langs = [Language.of("en", True), *[Language.of(tag) for tag in tags]]
    langs += [Language(tag=tag, is_default=False, name=name) for tag, name in zip(tags, names, strict=False)]
    lst = LanguageList.build(langs, NOW - 60)
    before = LanguageList.build([Language.of("en", True), Language.of("ja")], NOW - 120)
    changes = diff(before, lst)
    other_default = Changes(default_before=langs[-1], default_after=langs[0])
    failure = DeskError(spec(info, text), error_info=info, request_id=info, detail=info)
    stale = lst.as_stale(desk_error(70001, info, info))
    report = ReadinessReport.build(
        langs,
        [FaqCount(standard=0, all=0), *[failure] * (len(langs) - 1)],
        [RobotSettings(False, (info,), info, False, info), *[RobotSettings(True, (), "", False)] * (len(langs) - 1)],
        NOW - 30,
    )
    stale_report = report.as_stale(failure)

    # the lists, the default, errors, apps, compare, status, help and notices
    assert_no_live_hostile_token(
        blocks.languages_message(lst, ctx),
        blocks.languages_message(stale, ctx, buttons=False),
        blocks.default_message(lst, ctx),
        blocks.default_message(LanguageList.build([langs[-1]], NOW), ctx),
        blocks.error_message(failure, ctx, action=text),
        blocks.error_message(transport_error(TransportCode.READ_TIMEOUT, info), ctx),
        blocks.apps_message([(ctx, lst), (ctx, failure), (plain, stale)]),
        blocks.compare_message((ctx, before), (plain, lst), changes),
        blocks.compare_message((ctx, stale), (plain, stale), other_default),
        blocks.compare_message((ctx, lst), (plain, lst), Changes()),
        blocks.compare_message((ctx, failure), (plain, lst), None),
        blocks.readiness_message(report, ctx),
        blocks.readiness_message(stale_report, ctx),
        blocks.checking_message(ctx),
        blocks.help_message(text, (app, label)),
        blocks.unknown_option_message(text, info, text, (app, label)),
        blocks.notice_message(text),
    )

    # change alerts and the watch command's replies; the bot's own mention of a known user stays live
    who: dict[str, str | None] = {f"add:{tags[0]}": ADMIN, "remove:ja": text}
    added = Changes(added=(Language.of(tags[0]), langs[-1]), removed=(Language.of("ja"),))
    alert = watch_messages.change_alert(ctx, added, NOW, who)
    assert f"by <@{ADMIN}>" in alert["text"] and f"by <@{ADMIN}>" in alert["blocks"][0]["text"]["text"]
    assert_no_live_hostile_token(
        alert,
        watch_messages.change_alert(ctx, changes, NOW, who),
        watch_messages.change_alert(ctx, other_default, NOW, {}),
        watch_messages.outage_alert(ctx, NOW - 600, info, text),
        watch_messages.recovery_alert(ctx, NOW - 600, NOW),
        watch_messages.watching_message(ctx, app),
        watch_messages.status_message(ctx, app, NOW, ADMIN, text),
        watch_messages.status_message(ctx, app, NOW, text, None),
        watch_messages.stopped_message(ctx, True),
        watch_messages.stopped_message(ctx, False),
        watch_messages.usage_message(app),
    )

    # digests and the digest command's replies (which may quote what the user typed)
    title = digest_messages.AppTitle(name=app, label=label)
    schedule = parse_schedule("weekly mon 09:00 Europe/Berlin", "UTC")
    subscription = Subscription("C0DIGEST", app, text, False, info, info, NOW, NOW, NOW, created_by=text)
    last = {state: PostRecord("C0DIGEST", app, text, state, None, None, None, 1, None, NOW, info, None)
            for state in PostState}
    try:
        parse_schedule(text, "UTC")
        problem = text
    except ScheduleError as error:
        problem = str(error)
    upcoming = datetime.fromtimestamp(NOW + 3600, UTC)
    assert_no_live_hostile_token(
        digest_messages.subscribed_message(schedule, upcoming, subscription, text, title),
        digest_messages.status_message(subscription, None, None, last[PostState.RELEASED], text, title),
        digest_messages.status_message(subscription, schedule, upcoming, last[PostState.SKIPPED], None, title),
        digest_messages.status_message(subscription, schedule, upcoming, last[PostState.CLAIMED], None, None),
        digest_messages.status_message(None, None, None, None, None, title),
        digest_messages.stopped_message(subscription, title),
        digest_messages.stopped_message(subscription, None),
        digest_messages.error_reply(problem, title),
        digest_messages.posted_notice(False, text),
        digest_messages.digest_message(stale, changes, ctx, named=True, readiness=report),
        digest_messages.digest_message(lst, other_default, ctx, named=False, readiness=stale_report),
    )

    # language changes: confirmations, refusals, results, audit lines and history
    store = ChangeStore(migrated("sqlite://"))
    directory = AdminDirectory({"default": AdminList((ADMIN,), "DESK_ADMINS")}, WebClient(token="xoxb-unused"))
    managed = desk_app(RenderContext(sdkappid=1, region=region, label=label, app="default"), lst, report)
    manager = LanguageManager([managed], store, directory, clock=lambda: NOW)
    entries = [
        AuditEntry(NOW, who_, app, 1, action, tag, result, info)
        for who_, action, tag, result in ((ADMIN, "add", tags[0], text), (text, "remove", tags[-1], "applied"),
                                          (text, text, text, text))
    ]
    failed_write = WriteOutcome(WriteAction.REMOVE, tags[0], WriteStatus.NOT_APPLIED, error=failure, languages=stale)
    assert_no_live_hostile_token(
        change_messages.confirmation_message("add", tags[0], ctx, "request-1", 10),
        change_messages.confirmation_message("remove", tags[-1], ctx, "request-2", 10),
        manager.request(managed, ADMIN, "add", text),
        manager.request(managed, ADMIN, "remove", "vi"),
        manager.request(managed, text, "add", "vi"),
        change_messages.result_message(failed_write, ctx, ADMIN),
        change_messages.result_message(WriteOutcome(WriteAction.ADD, tags[-1], WriteStatus.UNKNOWN), ctx, text),
        *[change_messages.audit_line(entry, ctx) for entry in entries],
        change_messages.history_message(entries, ctx),
        change_messages.history_message([], ctx),
    )

    # the Home tab: each app's list (or its error), its readiness line, who watches it, the help
    home = [
        desk_app(ctx, lst, report),
        desk_app(ctx, stale, stale_report),
        desk_app(ctx, failure, failure),
    ]
    set_up = [SetUp("C0WATCH", ADMIN, NOW), SetUp(text, text, NOW, text)]
    assert_no_live_hostile_token(
        *[without_share_button(languages_reply(desk).message["blocks"]) for desk in home],
        *[blocks.context(readiness_line(desk)[0]) for desk in home],
        watch_messages.subscriptions_block(set_up, set_up),
    )

    # change control: the plan of hostile tags and settings, and the drift line of status and Home
    hostile_changes = (
        PlannedChange(ChangeKind.REMOVE, tags[0], applies=False, why_not=text),
        PlannedChange(ChangeKind.ADD, tags[-1]),
        PlannedChange(ChangeKind.SETTINGS, tags[0], "fallback_message", info, text),
        PlannedChange(ChangeKind.SETTINGS, tags[0], "welcome_card_questions", (info, text), ()),
        PlannedChange(ChangeKind.ATTENTION, tags[0], "faq", applies=False, why_not=f"{tags[0]} {text}"),
    )
    declared = DeclaredApp("default", ("en", "vi"), settings={"vi": {"fallback_message": text}})
    assert_no_live_hostile_token(
        plan_message([(ctx, AppPlan(app, 1, True, hostile_changes, checked_at=NOW)),
                      (ctx, AppPlan(app, 1, True, error=failure)), (plain, AppPlan(app, 2, False))], text),
        blocks.context(drift_line(declared, report, text) or ""),
        blocks.context(drift_line(declared, ReadinessReport.build(
            langs, [FaqCount(0, 0)] * len(langs), [RobotSettings(True, (), info, False)] * len(langs), NOW,
        ), text) or ""),
    )
