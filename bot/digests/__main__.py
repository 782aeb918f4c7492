"""`python -m bot.digests …`: the digest command line (see bot/digests/cli.py)."""

from bot.digests.cli import main

raise SystemExit(main())
