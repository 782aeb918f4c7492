"""Change control: the languages (and chatbot settings, and readiness requirements) of every app
declared in a file the team reviews in Git, what differs from Desk (the plan), and the writes that
bring Desk in line (apply). docs/change-control.md is the user's guide.

- `declared`: the file (`desk-languages.toml`), read with tomllib and validated, every error one
  line naming its key path.
- `plan`: pure, from the declared state and a readiness report read from Desk: each difference,
  whether `apply` can make it, and why not.
- `apply`: the plan's applicable changes through the bot's one write path (LanguageManager,
  SettingsEditor), in an order Desk accepts, stopping at the first refusal.
"""
