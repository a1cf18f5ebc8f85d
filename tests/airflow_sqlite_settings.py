"""SQLite connection settings for tests that run several Airflow processes on one metadata DB.

The scheduler, the API server and the `airflow backfill create` CLI write to the same SQLite
file; with sqlite3's default 5 s busy timeout a write can fail with "database is locked".
Airflow reads this through `[database] sql_alchemy_connect_args` (an import path).
"""
CONNECT_ARGS = {"timeout": 120}
