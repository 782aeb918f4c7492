"""The command line: `python -m bot <command>` (also installed as `desk-bot`).

Each command imports what it needs only when it runs (the function-local imports
below), so that `--help` and the light commands start without loading Bolt, the
Desk client or SQLAlchemy. Exit codes: 0 success, 1 a digest or the Socket Mode
connection failed, 2 bad configuration or usage (one line on stderr, no
traceback), 3 Desk failed, 4 (`plan`) Desk differs from the declared state.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.config import AppT, ConfigError, DeskApps, Settings, UnknownApp

if TYPE_CHECKING:
    from bot.changecontrol.declared import DeclaredState
    from bot.changecontrol.plan import AppPlan
    from bot.deps import DeskApp
    from bot.desk import DeskError, LanguageList
    from bot.desk.readiness import FaqCount, ReadinessReport, RobotSettings

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_DESK, EXIT_DRIFT = 0, 1, 2, 3, 4



def chosen_app(apps: Iterable[AppT], name: str | None) -> AppT:
    """The app `--app NAME` names (the default app without it); a ConfigError, with the closest
    name, for any other."""
    try:
        return DeskApps(apps).app(name)
    except UnknownApp as error:
        raise ConfigError("--app", f"{name!r} is not one of this bot's apps", error.fix) from None


def cmd_languages(args: argparse.Namespace) -> int:
    """Print the chatbot's languages as a table, or as JSON with --json (--app X, or --all)."""
    from bot.boot import build_desk_apps, load_configuration
    from bot.desk import DeskError
    from bot.terminal import languages_table

    settings = load_configuration()
    apps = build_desk_apps(settings)
    if not args.all:
        apps = (chosen_app(apps, args.app),)
    failed, documents = False, []
    for app in apps:
        title = app.render.title
        heading = (title if title == app.name else f"{title} ({app.name})") if len(settings.apps) > 1 else None
        try:
            result = app.client.get_languages(refresh=args.refresh)
        except DeskError as error:
            failed = True
            print(f"error: {heading + ': ' if heading else ''}{error}\nwhat to do: {error.hint}", file=sys.stderr)
            documents.append({"app": app.name, "sdkappid": app.client.sdkappid, "error": _error_json(error)})
            continue
        documents.append({"app": app.name, **_languages_json(app.client.sdkappid, result)})
        if not args.json:
            if heading and len(apps) > 1:
                print(f"{heading}\n{'=' * len(heading)}")
            print(languages_table(result) + ("\n" if len(apps) > 1 else ""))
        if result.stale and result.error is not None:
            print(
                f"warning: {heading + ': ' if heading else ''}Desk failed, so this is the last good list. "
                f"{result.error}\nwhat to do: {result.error.hint}",
                file=sys.stderr,
            )
    if args.json:
        print(json.dumps(documents if args.all else documents[0], indent=2, ensure_ascii=False))
    return EXIT_DESK if failed else EXIT_OK


def cmd_apps(args: argparse.Namespace) -> int:
    """Every configured Desk app: label, region, language count and default (exit 3 if any failed)."""
    from bot.boot import build_desk_apps, load_configuration
    from bot.deps import fetch_all
    from bot.desk import DeskError

    apps = build_desk_apps(load_configuration())
    failed = False
    rows = [("APP", "LABEL", "SDKAPPID", "REGION", "LANGUAGES", "DEFAULT")]
    for app, (render, result) in zip(apps, fetch_all(apps), strict=True):
        if isinstance(result, DeskError):
            failed = True
            rows.append((app.name, render.title, str(render.sdkappid), render.region, "error", str(result.code)))
            print(f"error: {app.name}: {result}\nwhat to do: {result.hint}", file=sys.stderr)
            continue
        default = result.default.tag or "(no tag)" if result.default else "none"
        count = f"{len(result.languages)}{' (stale)' if result.stale else ''}"
        rows.append((app.name, render.title, str(render.sdkappid), render.region, count, default))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return EXIT_DESK if failed else EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """Is each language ready? A table, or JSON with --json; exit 3 if a check failed. With a
    declared state, the line on it that Slack's `status` and the Home tab show (JSON: `drift`)."""
    from bot.boot import build_desk_apps, load_configuration, load_declared_state
    from bot.changecontrol.messages import declared_drift_line
    from bot.desk import DeskError
    from bot.terminal import unmarked

    settings = load_configuration()
    declared = load_declared_state(settings)
    apps = build_desk_apps(settings, declared)
    app = chosen_app(apps, args.app)
    try:
        report = app.client.readiness(refresh=args.refresh)
    except DeskError as error:
        print(f"error: {error}\nwhat to do: {error.hint}", file=sys.stderr)
        return EXIT_DESK
    failed = any(row.errors for row in report.languages)
    drift = declared_drift_line(declared, app.name, report)
    drift_text = unmarked(drift) if drift is not None else None
    if args.json:
        document = {"app": app.name, "sdkappid": app.client.sdkappid, **_readiness_json(report), "drift": drift_text}
        print(json.dumps(document, indent=2))
    else:
        rows = [("TAG", "NAME", "FAQ", "WELCOME CARD", "FALLBACK", "READY")]
        for row in report.languages:
            faq = str(row.faq.standard) if not isinstance(row.faq, DeskError) else f"error {row.faq.code}"
            if isinstance(row.config, DeskError):
                card = fallback = f"error {row.config.code}"
            else:
                questions = len(row.config.welcome_card_questions)
                card = f"on, {questions} questions" if row.config.welcome_card_enabled else "off"
                fallback = "set" if row.config.fallback_message.strip() else "none"
            ready = "yes" if row.ready else "no: " + "; ".join(row.problems())
            rows.append((row.language.tag or "(none)", row.language.name, faq, card, fallback, ready))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for r in rows:
            print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:5])) + "  " + r[5])
        print(f"\n{report.summary()}" + (" (stale: Desk failed just now)" if report.stale else ""))
        if drift_text is not None:
            print(drift_text)
    for row in report.languages:
        for check in row.errors:
            print(f"error: {row.language.tag or '(none)'}: {check}\nwhat to do: {check.hint}", file=sys.stderr)
    return EXIT_DESK if failed else EXIT_OK


SETTINGS_FLAGS = ("fallback", "welcome_card", "welcome_title", "welcome_question", "to_agent")


def cmd_settings(args: argparse.Namespace) -> int:
    """One language's chatbot settings, read from Desk now: a table, or JSON with --json. With
    --fallback, --welcome-card, --welcome-title, --welcome-question or --to-agent, changes them
    (`_change_settings`). Exit 2 for a tag the app does not serve (with the tag it most likely
    means), 3 if Desk failed. An empty TAG ("") is the default language."""
    if any(getattr(args, flag) is not None for flag in SETTINGS_FLAGS):
        return _change_settings(args)
    from bot.boot import build_desk_apps, load_configuration
    from bot.desk import DeskError
    from bot.terminal import settings_table

    apps = build_desk_apps(load_configuration())
    app = chosen_app(apps, args.app)
    typed = args.tag.strip()
    try:
        listed = app.client.get_languages()
        tag = listed.default.tag if not typed and listed.default is not None else typed
        problem = _not_served(listed, tag, app.render.title)
        if problem is not None:
            print(f"error: {problem}", file=sys.stderr)
            return EXIT_CONFIG
        settings = app.client.robot_settings(tag)
    except DeskError as error:
        print(f"error: {error}\nwhat to do: {error.hint}", file=sys.stderr)
        return EXIT_DESK
    if args.json:
        from dataclasses import asdict

        document = {"app": app.name, "sdkappid": app.client.sdkappid, "tag": tag, "settings": asdict(settings)}
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        print(settings_table(tag, settings))
    return EXIT_OK


def _change_settings(args: argparse.Namespace) -> int:
    """`settings TAG --fallback …`: the modal's checks, review and write on the terminal: the values
    read now, the fields given replaced, old → new shown, a confirmation (or --yes), Desk read
    again before the one write, audited as cli:<OS user>. Exit 0 applied, 2 refused before Desk
    (configuration, a limit, nothing to change, changed meanwhile), 3 Desk failed or in doubt."""
    import getpass
    from dataclasses import replace

    from bot.boot import build_cli_manager, load_configuration
    from bot.management.settings_editor import Loaded, SettingsEditor
    from bot.management.settings_form import EditableSettings, change_lines, check_values
    from bot.terminal import unmarked

    manager, apps, watch = build_cli_manager(load_configuration())
    editor = SettingsEditor(manager, on_change=watch.settings_changed if watch is not None else None)
    app = chosen_app(apps, args.app)
    who, tag = f"cli:{getpass.getuser()}", args.tag.strip()
    problem = _plain(editor.refusal_for_cli(app, tag) or manager.cli_approval_problem(app, args.approved_by) or "")
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    loaded = editor.load(app, who, tag)
    if not isinstance(loaded, Loaded):
        print(f"error: {_plain(loaded)}", file=sys.stderr)
        return EXIT_DESK if loaded.startswith("Couldn't read") else EXIT_CONFIG
    read = EditableSettings.of(loaded.settings)
    given: dict[str, Any] = {
        name: value for name, value in (
            ("fallback_message", args.fallback),
            ("welcome_card_enabled", None if args.welcome_card is None else args.welcome_card == "on"),
            ("welcome_card_title", args.welcome_title),
            ("welcome_card_questions", None if args.welcome_question is None else tuple(args.welcome_question)),
            ("to_agent_enabled", None if args.to_agent is None else args.to_agent == "on"),
        ) if value is not None
    }
    wanted = replace(read, **given)
    invalid = check_values(wanted)
    lines = change_lines(read, wanted)
    if invalid is not None or not lines:
        print(f"error: {invalid or 'nothing to change: these are the settings Desk has'}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"Change the chatbot settings of {tag} in {app.render.title} (SDKAppID {app.client.sdkappid}):")
    for label, old, new in lines:
        print(f"  {label}: {old} -> {new}")
    if not args.yes:
        if not sys.stdin.isatty():
            print("error: not on a terminal, so nothing to confirm with: add --yes to go ahead", file=sys.stderr)
            return EXIT_CONFIG
        if input("It takes effect in production at once. [y/N] ").strip().lower() not in ("y", "yes"):
            print("cancelled: nothing was sent to Desk")
            return EXIT_OK
    proposed = editor.propose(app, loaded.request_id, who, wanted, check_admin=False)
    if isinstance(proposed, str):
        print(f"error: {_plain(proposed)}", file=sys.stderr)
        return EXIT_CONFIG
    applied = editor.apply(app, loaded.request_id, who, check_admin=False, approved_by=args.approved_by)
    print(unmarked(applied.text))
    if watch is not None and not watch.wait_noticed(timeout=15):
        print("note: the change alert is still on its way; the next watch poll sends it", file=sys.stderr)
    if applied.result is None:
        return EXIT_CONFIG
    return EXIT_OK if applied.result == "applied" else EXIT_DESK


def _not_served(listed: LanguageList, tag: str, title: str) -> str | None:
    """Why `tag` names none of the app's languages (plain text), or None. An unsupported tag gets
    the answer `add` gives, with the tag it most likely means."""
    from bot.management.messages import unsupported_tag_problem

    if listed.has(tag):
        return None
    unsupported = unsupported_tag_problem(tag) if tag else None
    if unsupported is not None:
        return _plain(unsupported)
    served = ", ".join(lang.tag or '""' for lang in listed.languages) or "none"
    return f"{tag or 'the default language'} is not one of {title}'s languages (it has: {served})."


def _plain(mrkdwn: str) -> str:
    from bot.terminal import plain_text

    return plain_text(mrkdwn)


def _readiness_json(report: ReadinessReport) -> dict[str, object]:
    from dataclasses import asdict

    from bot.desk import DeskError

    def result(value: FaqCount | RobotSettings | DeskError) -> object:
        return {"error": _error_json(value)} if isinstance(value, DeskError) else asdict(value)

    return {
        "summary": report.summary(),
        "ready": report.ready,
        "checked_at": report.fetched_at,
        "stale": report.stale,
        "languages": [
            {
                "tag": row.language.tag,
                "name": row.language.name,
                "is_default": row.language.is_default,
                "ready": row.ready,
                "flags": [flag.value for flag in row.flags],
                "faq": result(row.faq),
                "settings": result(row.config),
            }
            for row in report.languages
        ],
    }


def cmd_change(args: argparse.Namespace) -> int:
    """`add TAG` / `remove TAG`: the same checks as in Slack, a confirmation on the terminal
    (or --yes), one write, recorded in the audit trail with the OS user as who."""
    import getpass

    from bot.boot import build_cli_manager, load_configuration

    settings = load_configuration()
    manager, apps, watch = build_cli_manager(settings)
    app = chosen_app(apps, args.app)
    refused = manager.cli_approval_problem(app, args.approved_by)
    if refused is not None:
        print(f"error: {_plain(refused)}", file=sys.stderr)
        return EXIT_CONFIG
    tag, problem = manager.check(app, args.command, args.tag)
    if problem is not None or tag is None:
        print(f"error: {_plain(problem or 'nothing to change')}", file=sys.stderr)
        return EXIT_DESK if problem and problem.startswith("Couldn't read") else EXIT_CONFIG
    note = manager.declared_note(app.name, args.command, tag)
    if note is not None:
        print(f"note: {_plain(note)}")
    verb, preposition = ("Add", "to") if args.command == "add" else ("Remove", "from")
    question = (
        f"{verb} {tag} {preposition} {app.render.title} (SDKAppID {app.client.sdkappid}, {app.render.region})? "
        "It takes effect in production at once. [y/N] "
    )
    if not args.yes:
        if not sys.stdin.isatty():
            print("error: not on a terminal, so nothing to confirm with: add --yes to go ahead", file=sys.stderr)
            return EXIT_CONFIG
        if input(question).strip().lower() not in ("y", "yes"):
            print("cancelled: nothing was sent to Desk")
            return EXIT_OK
    change = manager.apply_from_cli(app, f"cli:{getpass.getuser()}", args.command, tag, approved_by=args.approved_by)
    outcome = change.outcome
    print(outcome.describe())
    if not change.recorded:
        from bot.management.service import NOT_RECORDED

        print(f"error: {NOT_RECORDED}", file=sys.stderr)
    if watch is not None and not watch.wait_noticed(timeout=15):  # watching channels hear of it now
        print("note: the change alert is still on its way; the next watch poll sends it", file=sys.stderr)
    if outcome.error is not None and not outcome.applied:
        print(f"what to do: {outcome.error.hint}", file=sys.stderr)
    if not change.recorded:
        return EXIT_FAILED
    return EXIT_OK if outcome.applied else EXIT_DESK


def _declared_state(settings: Settings) -> DeclaredState:
    from bot.boot import load_declared_state

    state = load_declared_state(settings)
    if state is None:
        raise ConfigError(
            "DESK_STATE_FILE", "is not set and there is no desk-languages.toml here",
            "Write one (docs/change-control.md) or set DESK_STATE_FILE to its path.",
        )
    return state


def _app_heading(app: DeskApp) -> str:
    label = app.render.label
    return f"{app.name} ({label})" if label and label != app.name else app.name


def _read_plans(apps: Sequence[DeskApp], state: DeclaredState) -> list[AppPlan]:
    """Every chosen app's plan, read concurrently (each app's reads wait on its own rate limit)."""
    from concurrent.futures import ThreadPoolExecutor

    from bot.changecontrol.plan import read_plan

    with ThreadPoolExecutor(max_workers=len(apps), thread_name_prefix="plan") as pool:
        return list(pool.map(lambda app: read_plan(app, state.app(app.name)), apps))


def cmd_plan(args: argparse.Namespace) -> int:
    """What differs between Desk and the declared state, per app (--app X: one). Exit codes: 0 in
    sync, 2 configuration, 3 Desk failed, 4 changes pending (console-only ones included)."""
    from bot.boot import build_desk_apps, load_configuration
    from bot.changecontrol.plan import plan_document, plan_text

    settings = load_configuration()
    state = _declared_state(settings)
    apps = build_desk_apps(settings)
    chosen = (chosen_app(apps, args.app),) if args.app else apps
    plans = _read_plans(chosen, state)
    if args.json:
        print(json.dumps(plan_document(state, plans), indent=2, ensure_ascii=False))
    else:
        print(plan_text(state, [(_app_heading(app), plan) for app, plan in zip(chosen, plans, strict=True)]))
    for plan in plans:
        if plan.error is not None and args.json:
            print(f"error: {plan.app}: {plan.error}\nwhat to do: {plan.error.hint}", file=sys.stderr)
    if any(plan.error is not None for plan in plans):
        return EXIT_DESK
    return EXIT_OK if all(plan.in_sync for plan in plans) else EXIT_DRIFT


def cmd_apply(args: argparse.Namespace) -> int:
    """The plan's applicable changes, after a confirmation (or --yes), through the write path of
    `add`, `remove` and `settings`, audited as apply:<OS user>. Stops at the first refusal and says
    what was applied and what remains. Exit codes: 0 nothing applicable remains, 2 configuration,
    3 Desk failed or refused (or the plan could not be read)."""
    import getpass

    from bot.boot import build_cli_manager, load_configuration
    from bot.changecontrol.apply import apply_plans
    from bot.changecontrol.plan import plan_text
    from bot.management.settings_editor import SettingsEditor

    settings = load_configuration()
    state = _declared_state(settings)
    manager, apps, watch = build_cli_manager(settings)
    editor = SettingsEditor(manager, on_change=watch.settings_changed if watch is not None else None)
    chosen = (chosen_app(apps, args.app),) if args.app else apps
    plans = _read_plans(chosen, state)
    print(plan_text(state, [(_app_heading(app), plan) for app, plan in zip(chosen, plans, strict=True)]))
    if any(plan.error is not None for plan in plans):
        print("error: Desk failed, so nothing was applied; run it again when Desk answers", file=sys.stderr)
        return EXIT_DESK
    work = [(app, plan) for app, plan in zip(chosen, plans, strict=True) if plan.applicable]
    for app, _ in work:
        refused = manager.cli_approval_problem(app, args.approved_by)
        if refused is not None:
            print(f"error: {_plain(refused)} Nothing was applied.", file=sys.stderr)
            return EXIT_CONFIG
    console_only = any(not change.applies for plan in plans for change in plan.changes)
    if not work:
        print("\nNothing to apply." + (" What is left needs the Tencent console (the lines above)." if console_only
                                       else ""))
        return EXIT_OK
    count = sum(len(plan.applicable) for _, plan in work)
    if not args.yes:
        if not sys.stdin.isatty():
            print("error: not on a terminal, so nothing to confirm with: add --yes to go ahead", file=sys.stderr)
            return EXIT_CONFIG
        question = f"\nApply {count} change{'' if count == 1 else 's'}? They take effect in production at once. [y/N] "
        if input(question).strip().lower() not in ("y", "yes"):
            print("cancelled: nothing was sent to Desk")
            return EXIT_OK
    who = f"apply:{getpass.getuser()}"
    applied, stopped = apply_plans([(_app_heading(app), app, plan) for app, plan in work], manager, editor, who,
                                   say=print, approved_by=args.approved_by)
    if watch is not None and applied and not watch.wait_noticed(timeout=15):
        print("note: the change alerts are still on their way; the next watch poll sends them", file=sys.stderr)
    if stopped:
        return EXIT_DESK
    left = " Left for the Tencent console: the lines marked (console only) or not by apply." if console_only else ""
    print(f"\nApplied.{left}")
    return EXIT_OK


def _error_json(error: DeskError) -> dict[str, object]:
    return {"code": error.code, "meaning": error.meaning, "hint": error.hint}


def _languages_json(sdkappid: int, result: LanguageList) -> dict[str, object]:
    return {
        "sdkappid": sdkappid,
        "languages": [
            {"tag": lang.tag, "name": lang.name, "is_default": lang.is_default} for lang in result.languages
        ],
        "default": result.default.tag if result.default else None,
        "fetched_at": result.fetched_at,
        "stale": result.stale,
        "error": None if result.error is None else _error_json(result.error),
    }


def cmd_sandbox(args: argparse.Namespace) -> int:
    """Run the embedded Desk emulator in the foreground (for multi-process set-ups)."""
    from bot.sandbox.desk_emulator import serve_forever_cli

    serve_forever_cli(args.port, host=args.host, sample=args.sample, app_index=args.app_index, admins=args.admin)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Run one slash command through the real app against the emulator and a stand-in Slack."""
    from bot.sandbox.demo import run_demo

    return run_demo(" ".join(args.text), as_json=args.json)


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.boot import load_configuration
    from bot.serve import serve_http

    serve_http(load_configuration())
    return EXIT_OK


def cmd_socket(args: argparse.Namespace) -> int:
    from bot.boot import load_configuration
    from bot.serve import SocketStalled, serve_socket

    try:
        serve_socket(load_configuration())
    except SocketStalled as stalled:
        print(f"error: {stalled}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring the database's schema (DATABASE_URL) to this version's: what Heroku's release phase runs
    (Procfile `release:`), before the new processes start. Safe to run twice, and from two processes
    at once. Exit codes: 0 done (or nothing to do), 1 the database could not be reached, 2 configuration."""
    from bot.boot import load_configuration, migrate_database
    from bot.database import DatabaseUnavailable

    try:
        before, now = migrate_database(load_configuration())
    except DatabaseUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    if before == now:
        print(f"The database's schema is current ({now}); nothing to do.")
    else:
        print(f"The database's schema is now {now} (it was {before or 'empty, or from before migrations'}).")
    return EXIT_OK


def cmd_manifest(args: argparse.Namespace) -> int:
    from bot.slack.manifest import render_manifest

    try:
        print(render_manifest(args.url, socket_mode=args.socket), end="")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK


def cmd_digest(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """One digest tick (--due) or a digest posted now (--channel C123).

    `--due` is what Heroku Scheduler (or cron) runs every 10 minutes when the in-process
    ticker is off; it is safe alongside tickers, since every post is claimed in the
    database. `--now ISO8601` pretends the schedule clock says that time (tests,
    backfills within DIGEST_GRACE). Exit codes: 0 done, 1 some digest failed (recorded,
    retried next tick), 2 configuration or usage, 3 Desk failed.
    """
    from bot.boot import build_cli_digests, load_configuration
    from bot.digests.service import Outcome

    service = build_cli_digests(settings or load_configuration())
    if args.lease is not None:
        service.lease = args.lease
    if args.now is not None:
        fixed = args.now
        service.clock = lambda: fixed
    if args.due:
        service.seed_from_settings()
        report = service.tick()
        print(report.summary())
        return EXIT_FAILED if report.failed else EXIT_OK
    if args.app is not None:
        chosen_app(list(service.apps), args.app)
    result = service.post_now(args.channel, args.app)
    if result.outcome is Outcome.POSTED:
        print(f"posted to {result.channel_id} (ts {result.ts})")
        return EXIT_OK
    print(f"not posted to {result.channel_id}: {result.outcome}: {result.error}", file=sys.stderr)
    return EXIT_DESK if result.error and result.error.startswith("Desk") else EXIT_FAILED


def cmd_watch(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """One watch tick (--due): poll every app whose interval slot nobody has polled yet, then post
    the pending change alerts. Safe alongside tickers and other schedulers (everything is claimed
    in the database). Exit codes: 0 done, 1 some alert failed (retried next tick), 2 configuration."""
    from bot.boot import build_cli_watch, load_configuration

    service = build_cli_watch(settings or load_configuration())
    if args.lease is not None:
        service.lease = args.lease
    report = service.tick()
    print(report.summary())
    return EXIT_FAILED if report.failed else EXIT_OK


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time such as 2026-03-30T09:00Z") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def cmd_errors(args: argparse.Namespace) -> int:
    """Print every Desk error the bot knows, with what to do about it (Markdown)."""
    from bot.desk.errors import catalogue_markdown

    print(catalogue_markdown(), end="")
    return EXIT_OK


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "demo": (cmd_demo, "try the whole bot locally: emulated Desk, stand-in Slack, real app"),
    "languages": (cmd_languages, "print the Desk chatbot's languages (--app X, --all)"),
    "apps": (cmd_apps, "print every configured Desk app with its language count and default"),
    "status": (cmd_status, "is each language ready? FAQ questions, welcome card, fallback message"),
    "settings": (cmd_settings, "print one language's chatbot settings: fallback message, welcome card, thresholds"),
    "add": (cmd_change, "add a language to the chatbot (asks to confirm; --yes to skip)"),
    "remove": (cmd_change, "remove a language from the chatbot (asks to confirm; --yes to skip)"),
    "plan": (cmd_plan, "what differs between Desk and desk-languages.toml (--app X, --json; exit 4: changes)"),
    "apply": (cmd_apply, "make Desk what desk-languages.toml declares (asks to confirm; --yes to skip)"),
    "serve": (cmd_serve, "serve Slack over HTTP (granian) on $PORT"),
    "socket": (cmd_socket, "serve Slack over Socket Mode (no public URL needed)"),
    "digest": (cmd_digest, "post due channel digests (--due) or one now (--channel C123)"),
    "watch": (cmd_watch, "poll every Desk app once and post change alerts (--due)"),
    "migrate": (cmd_migrate, "bring the database's schema to this version's (Heroku's release phase runs it)"),
    "manifest": (cmd_manifest, "print the Slack app manifest for this deployment"),
    "sandbox": (cmd_sandbox, "run the embedded Desk emulator on a loopback port"),
    "errors": (cmd_errors, "print the Desk error catalogue with hints, as Markdown"),
}


APPROVED_BY_HELP = "the second admin who approved (Slack user ID), required where DESK_<APP>_APPROVALS=2; audited"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, description=help_text)
    languages = sub.choices["languages"]
    languages.add_argument("--json", action="store_true", help="print JSON instead of a table")
    languages.add_argument("--refresh", action="store_true", help="bypass the cache")
    languages.add_argument("--app", help="the app's name (DESK_APPS); default: the first")
    languages.add_argument("--all", action="store_true", help="every app, one table each")
    status = sub.choices["status"]
    status.add_argument("--app", help="the app's name (DESK_APPS); default: the first")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.add_argument("--refresh", action="store_true", help="check again now, bypassing the cache")
    settings_ = sub.choices["settings"]
    settings_.add_argument("tag", help='the language tag, e.g. fil ("" for the default language)')
    settings_.add_argument("--app", help="the app's name (DESK_APPS); default: the first")
    settings_.add_argument("--json", action="store_true", help="print JSON instead of a table")
    settings_.add_argument("--fallback", metavar="TEXT", help="change: the fallback message")
    settings_.add_argument("--welcome-card", choices=("on", "off"), help="change: show the welcome card or not")
    settings_.add_argument("--welcome-title", metavar="TEXT", help="change: the welcome card's title")
    settings_.add_argument("--welcome-question", metavar="Q", action="append",
                           help="change: the welcome card's questions (repeat, in order; they replace all)")
    settings_.add_argument("--to-agent", choices=("on", "off"), help="change: transfer to an agent")
    settings_.add_argument("--yes", action="store_true", help="with a change: do not ask for confirmation")
    settings_.add_argument("--approved-by", metavar="U…", help=APPROVED_BY_HELP)
    for change in ("add", "remove"):
        parser_ = sub.choices[change]
        parser_.add_argument("tag", help="the language tag, e.g. vi")
        parser_.add_argument("--app", help="the app's name (DESK_APPS); default: the first")
        parser_.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        parser_.add_argument("--approved-by", metavar="U…", help=APPROVED_BY_HELP)
    plan = sub.choices["plan"]
    plan.add_argument("--app", help="one app's plan (DESK_APPS); default: every app")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON (docs/change-control.md)")
    apply = sub.choices["apply"]
    apply.add_argument("--app", help="apply to one app only (DESK_APPS); default: every app")
    apply.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    apply.add_argument("--approved-by", metavar="U…", help=APPROVED_BY_HELP)
    demo = sub.choices["demo"]
    demo.add_argument("text", nargs="*", help="what follows /desk-languages, e.g. share or help")
    demo.add_argument("--json", action="store_true", help="print the Block Kit payload")
    manifest = sub.choices["manifest"]
    manifest.add_argument("--url", help="the app's public base URL, e.g. https://my-bot.herokuapp.com")
    manifest.add_argument("--socket", action="store_true", help="the Socket Mode variant (no URLs)")
    digest = sub.choices["digest"]
    what = digest.add_mutually_exclusive_group(required=True)
    what.add_argument("--due", action="store_true", help="post every digest that is due, once, and exit")
    what.add_argument("--channel", metavar="CHANNEL_ID", help="post a digest to this channel now")
    digest.add_argument(
        "--now", type=_instant, metavar="ISO8601", help="act as if it were this time (UTC without an offset)"
    )
    digest.add_argument("--app", help="with --channel: the app whose digest to post (default: the first)")
    digest.add_argument("--lease", type=float, help=argparse.SUPPRESS)  # tests: a short claim lease
    watch = sub.choices["watch"]
    watch.add_argument("--due", action="store_true", required=True, help="poll what is due, post alerts, and exit")
    watch.add_argument("--lease", type=float, help=argparse.SUPPRESS)  # tests: a short claim lease
    sandbox = sub.choices["sandbox"]
    sandbox.add_argument("--port", type=int, default=0, help="port to listen on (default: any free one)")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--app-index", type=int, default=0,
                         help="emulate the N-th app of DESK_SANDBOX=1 with DESK_APPS (its own SDKAppID, key, list)")
    sandbox.add_argument("--sample", choices=("default", "staging"),
                         help="the starting data (default: the app's own list)")
    sandbox.add_argument("--admin", action="append", default=[], metavar="IDENTIFIER",
                         help="another Desk admin identifier to accept besides administrator (repeat)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler, _ = COMMANDS[args.command]
    try:
        return handler(args)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `python -m bot demo | head`: the reader left; not an error of ours
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  Python flushes stdout again at exit
        return EXIT_OK
