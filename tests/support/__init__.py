"""Test support: what several test modules share (launchers, settings, the served-bot harness, clocks,
the two tiers). Test modules import from here, never from each other."""
