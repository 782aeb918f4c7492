"""`/desk-languages [APP] watch`: change alerts, one poll per app and interval for the whole
deployment, each alert posted exactly once per (channel, app, change). See docs/watch.md."""
