"""A bot process for the multi-process Redis tests: a `DeskClient` built from the environment.

Run as `python -m tests.support.redis_worker` with DESK_* and REDIS_URL set. It builds its
client exactly as the bot does (`load_settings` + `build_desk_client`), prints
`ready`, and then runs one phase per line read from stdin, printing one JSON line
per phase:

- `burst <threads>`: that many concurrent `get_languages()`;
- `storm <threads> <seconds>`: that many threads calling `get_languages(refresh=True)`
  in a loop for that long.

Each result line counts answers, stale answers and error codes.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from bot.boot import build_desk_client
from bot.config import load_settings
from bot.desk import DeskClient, DeskError


def run_threads(threads: int, work: Any) -> dict[str, Any]:
    tally: Counter[str] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def one() -> None:
        barrier.wait()
        for outcome in work():
            with lock:
                tally[outcome] += 1

    workers = [threading.Thread(target=one) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return dict(tally)


def answer(client: DeskClient, refresh: bool) -> str:
    try:
        result = client.get_languages(refresh=refresh)
    except DeskError as error:
        return f"error:{error.code}"
    return "stale" if result.stale else "ok"


def storm(client: DeskClient, seconds: float) -> Callable[[], list[str]]:
    until = time.monotonic() + seconds

    def refresh_until() -> list[str]:
        outcomes = []
        while time.monotonic() < until:
            outcomes.append(answer(client, refresh=True))
        return outcomes

    return refresh_until


def main() -> None:
    client = build_desk_client(load_settings(dotenv_path=None))
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "burst":
            tally = run_threads(int(words[1]), lambda: [answer(client, refresh=False)])
        elif words[0] == "storm":
            tally = run_threads(int(words[1]), storm(client, float(words[2])))
        else:
            tally = {"unknown-command": 1}
        print(json.dumps(tally), flush=True)


if __name__ == "__main__":
    main()
