"""Test support: service launchers, the settings helpers, the served-bot harness and a worker process."""
