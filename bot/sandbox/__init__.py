"""The embedded emulators."""
