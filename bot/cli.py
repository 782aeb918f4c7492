"""The command line: `python -m bot <command>` (also installed as `desk-bot`).

Each command lives in its own module and is imported only when used, so that
`--help` and the light commands start fast. Exit codes: 0 success, 2 bad
configuration or usage (one line on stderr, no traceback), 3 Desk failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from bot.config import ConfigError, Settings, load_settings

EXIT_OK, EXIT_CONFIG, EXIT_DESK = 0, 2, 3


def settings_from_environment() -> Settings:
    """Settings from the environment and `.env`, with logging configured (and redacting)."""
    from bot.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, settings.secrets())
    return settings


def cmd_languages(args: argparse.Namespace) -> int:
    """Print the chatbot's languages as a table, or as JSON with --json."""
    from bot.desk import DeskError, build_desk_client
    from bot.desk.textview import languages_table

    settings = settings_from_environment()
    client = build_desk_client(settings)
    try:
        result = client.get_languages(refresh=args.refresh)
    except DeskError as error:
        print(f"error: {error}\nwhat to do: {error.hint}", file=sys.stderr)
        return EXIT_DESK
    if args.json:
        print(
            json.dumps(
                {
                    "sdkappid": client.sdkappid,
                    "languages": [
                        {"tag": lang.tag, "name": lang.name, "is_default": lang.is_default}
                        for lang in result.languages
                    ],
                    "default": result.default.tag if result.default else None,
                    "fetched_at": result.fetched_at,
                    "stale": result.stale,
                    "error": None
                    if result.error is None
                    else {"code": result.error.code, "meaning": result.error.meaning, "hint": result.error.hint},
                },
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        print(languages_table(result))
    if result.stale and result.error is not None:
        print(
            f"warning: Desk failed, so this is the last good list. {result.error}\n"
            f"what to do: {result.error.hint}",
            file=sys.stderr,
        )
    return EXIT_OK


def cmd_sandbox(args: argparse.Namespace) -> int:
    """Run the embedded Desk emulator in the foreground (for multi-process set-ups)."""
    from bot.desk.sandbox import serve_forever_cli

    serve_forever_cli(args.port, host=args.host)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Run one slash command through the real app against the emulator and a stand-in Slack."""
    from bot.demo import run_demo

    return run_demo(" ".join(args.text), as_json=args.json)


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.serve import serve_http

    serve_http(settings_from_environment())
    return EXIT_OK


def cmd_socket(args: argparse.Namespace) -> int:
    from bot.serve import SocketStalled, serve_socket

    try:
        serve_socket(settings_from_environment())
    except SocketStalled as stalled:
        print(f"error: {stalled}", file=sys.stderr)
        return 1
    return EXIT_OK


def cmd_manifest(args: argparse.Namespace) -> int:
    from bot.manifest import render_manifest

    try:
        print(render_manifest(args.url, socket_mode=args.socket), end="")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK


def cmd_digest(args: argparse.Namespace) -> int:
    """One digest tick (--due) or a digest posted now (--channel C123)."""
    from bot.digests.cli import digest_cli

    return digest_cli(args.digest_args, settings_from_environment())


def cmd_errors(args: argparse.Namespace) -> int:
    """Print every Desk error the bot knows, with what to do about it (Markdown)."""
    from bot.desk.errors import catalogue_markdown

    print(catalogue_markdown(), end="")
    return EXIT_OK


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "demo": (cmd_demo, "try the whole bot locally: emulated Desk, stand-in Slack, real app"),
    "languages": (cmd_languages, "print the Desk chatbot's languages"),
    "serve": (cmd_serve, "serve Slack over HTTP under gunicorn on $PORT"),
    "socket": (cmd_socket, "serve Slack over Socket Mode (no public URL needed)"),
    "digest": (cmd_digest, "post due channel digests (--due) or one now (--channel C123)"),
    "manifest": (cmd_manifest, "print the Slack app manifest for this deployment"),
    "sandbox": (cmd_sandbox, "run the embedded Desk emulator on a loopback port"),
    "errors": (cmd_errors, "print the Desk error catalogue with hints, as Markdown"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, description=help_text)
    languages = sub.choices["languages"]
    languages.add_argument("--json", action="store_true", help="print JSON instead of a table")
    languages.add_argument("--refresh", action="store_true", help="bypass the cache")
    demo = sub.choices["demo"]
    demo.add_argument("text", nargs="*", help="what follows /desk-languages, e.g. share or help")
    demo.add_argument("--json", action="store_true", help="print the Block Kit payload")
    manifest = sub.choices["manifest"]
    manifest.add_argument("--url", help="the app's public base URL, e.g. https://my-bot.herokuapp.com")
    manifest.add_argument("--socket", action="store_true", help="the Socket Mode variant (no URLs)")
    sub.choices["digest"].usage = "python -m bot digest (--due | --channel C123) [--now ISO8601]"
    sandbox = sub.choices["sandbox"]
    sandbox.add_argument("--port", type=int, default=0, help="port to listen on (default: any free one)")
    sandbox.add_argument("--host", default="127.0.0.1")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "digest":
        args.digest_args = extra  # its options are parsed by the digest command itself
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    handler, _ = COMMANDS[args.command]
    try:
        return handler(args)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
