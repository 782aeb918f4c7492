"""The embedded emulators (Tencent Desk, Slack's Web API), their sample data and the demo that
drives them, for `python -m bot demo`, `DESK_SANDBOX=1` and the tests. Production code never imports
this package: only the composition root (for DESK_SANDBOX=1) and the command line's demo do.
"""
