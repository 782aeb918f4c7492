"""Benchmarks and a fault-injection soak for the bot, run against real processes on loopback.

One module per benchmark, each runnable as `python -m bench.<name>` (add `--smoke`
for a run of a few seconds): it prints a small table and writes its figures as
JSON under `bench/results/`. `python -m bench` (bench/report.py) runs them all
and regenerates `docs/benchmarks.md`.

- `ack_path`       the ack with wrk, the bot and three references (`baselines`) each under granian and gunicorn
- `hung_upstream`  Desk hangs: acks stay fast, every command gets its error reply in time
- `cold_burst`     200 concurrent commands on a cold cache: one upstream call
- `refresh_storm`  300 `refresh` commands in 10 s, 1 process and 3 sharing Redis
- `start_size`     boot to /healthz, resident memory per worker after 1,000 commands
- `soak`           every capability over two apps and two processes (one killed), random Desk and Slack faults
- `front_door`     pathological bodies, a 50 MB POST and slowloris against the HTTP edge
- `apps_status`    `apps` with one of three Desk apps hanging; `status` cold (via response_url) and warm (in the ack)
- `watch_load`     change alerts from 3 processes, 2 apps and 50 channels: each posted once, one Desk poll per interval

The bot always runs as its own process (`python -m bot serve`: granian), so the load
generator never shares its GIL; Desk is the emulator (`python -m bot sandbox`) in a
process of its own (in `apps_status`, `DeskEmulator`s in the benchmark's process, for
their own SDKAppIDs and keys); Slack is `FakeSlack` in the benchmark's process. Every
socket is on 127.0.0.1.

What every benchmark shares: bench/processes.py (the emulator and the servers under test,
each its own process, and FakeSlack), bench/load.py (signed Slack requests and wrk) and bench/figures.py
(the command line, the JSON figures, the table, the machine).
"""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
