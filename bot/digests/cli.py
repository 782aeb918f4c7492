"""`python -m bot digest --due | --channel C123`: one tick for external schedulers, or a post now.

`--due` is what Heroku Scheduler (or cron) runs every 10 minutes when the
in-process ticker is off; it is safe alongside tickers, since every post is
claimed in the database. `--now ISO8601` pretends the schedule clock says that
time (tests, backfills within DIGEST_GRACE). Exit codes: 0 done, 1 some digest
failed (recorded, retried next tick), 2 configuration or usage, 3 Desk failed.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from bot.config import ConfigError, Settings
from bot.digests.service import DEFAULT_LEASE, DigestService, Outcome

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_DESK = 0, 1, 2, 3


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time such as 2026-03-30T09:00Z") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def build_parser(prog: str = "python -m bot digest") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Post channel digests.")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--due", action="store_true", help="post every digest that is due, once, and exit")
    what.add_argument("--channel", metavar="CHANNEL_ID", help="post a digest to this channel now")
    parser.add_argument(
        "--now", type=_instant, metavar="ISO8601", help="act as if it were this time (UTC without an offset)"
    )
    parser.add_argument("--lease", type=float, default=DEFAULT_LEASE, help=argparse.SUPPRESS)
    return parser


def build_cli_service(settings: Settings, lease: float = DEFAULT_LEASE) -> DigestService:
    from bot.app import build_web_client
    from bot.desk import build_desk_client
    from bot.digests.service import build_digest_service

    if settings.slack_bot_token is None:
        raise ConfigError("SLACK_BOT_TOKEN", "is not set", "Set it to the app's Bot User OAuth Token (xoxb-…).")
    service = build_digest_service(settings, build_desk_client(settings), build_web_client(settings))
    service.lease = lease
    return service


def digest_cli(argv: list[str], settings: Settings) -> int:
    """Run `digest` with `argv` (the words after `digest`). Raises ConfigError on bad configuration."""
    args = build_parser().parse_args(argv)
    service = build_cli_service(settings, args.lease)
    if args.now is not None:
        fixed = args.now
        service.clock = lambda: fixed
    if args.due:
        service.seed_from_settings()
        report = service.tick()
        print(report.summary())
        return EXIT_FAILED if report.failed else EXIT_OK
    result = service.post_now(args.channel)
    if result.outcome is Outcome.POSTED:
        print(f"posted to {result.channel_id} (ts {result.ts})")
        return EXIT_OK
    print(f"not posted to {result.channel_id}: {result.outcome}: {result.error}", file=sys.stderr)
    return EXIT_DESK if result.error and result.error.startswith("Desk") else EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    """`python -m bot.digests …`, the same as `python -m bot digest …`."""
    from bot.config import load_settings
    from bot.logs import configure_logging

    try:
        settings = load_settings()
        configure_logging(settings.log_level, settings.secrets())
        return digest_cli(sys.argv[1:] if argv is None else argv, settings)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG
