"""Test support: what several test modules share (launchers, settings, the served-bot harness, clocks,
the two tiers, the Socket Mode test server). Test modules import from here, never from each other."""
