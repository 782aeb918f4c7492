"""Changing a chatbot's languages from Slack: admins, confirmations, the write, the audit trail.

admins.py (who may) · store.py (confirmations and the audit, in SQL) · service.py (the flow)
· messages.py (its Block Kit).
"""
