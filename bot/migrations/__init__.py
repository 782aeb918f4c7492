"""The database's schema migrations (Alembic): env.py runs them on the connection
`bot.database.migrate` gives it; versions/ holds one script per schema change, oldest first.
Each script defines the tables it touches as they were then, so it never changes with the code.
"""
