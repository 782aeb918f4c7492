"""Everything that speaks Slack: the Bolt app, the HTTP edge, posting to channels exactly once,
`response_url` delivery, Block Kit rendering, the `/desk-languages` grammar and the app manifest.
`handlers/` (the listeners) import from here; the Desk client and shared state never do.
"""
