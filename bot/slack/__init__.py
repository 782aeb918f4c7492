"""Everything that speaks Slack."""
