"""The database's schema, for every table: jobs, keys and the record of each request.

Each step is a list of statements for SQLite and PostgreSQL alike. A database
records the steps it has taken, and ``Database`` takes the rest as it connects.
"""

from __future__ import annotations

# The schema, step by step; a database records the steps it has taken in schema_version,
# and ``Database`` takes the rest as it connects. ``{real}`` and ``{blob}`` are the dialect's
# names for a float and a byte string. Never change a step: add one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE IF NOT EXISTS jobs (
            id TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            created_at {real} NOT NULL,
            finished_at {real},
            runs INTEGER NOT NULL DEFAULT 0,
            idempotency_key TEXT,
            dedup_key TEXT,
            lease_owner TEXT,
            lease_until {real},
            body {blob} NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS jobs_waiting ON jobs (status, created_at)",
        "CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at)",
        "CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs (idempotency_key)",
        "CREATE INDEX IF NOT EXISTS jobs_dedup ON jobs (dedup_key)",
        """CREATE TABLE IF NOT EXISTS model_speed (
            model TEXT PRIMARY KEY,
            seconds_per_token {real} NOT NULL
        )""",
    ),
    (
        "ALTER TABLE jobs ADD COLUMN webhook_state TEXT",
        "CREATE INDEX IF NOT EXISTS jobs_webhooks ON jobs (webhook_state, finished_at)",
    ),
    (
        "ALTER TABLE jobs ADD COLUMN key_id TEXT",
        """CREATE TABLE IF NOT EXISTS api_keys (
            id TEXT PRIMARY KEY,
            hash TEXT NOT NULL UNIQUE,
            created_at {real} NOT NULL,
            updated_at {real} NOT NULL,
            revoked_at {real},
            body {blob} NOT NULL
        )""",
        # One row per request that reached a model; ``content``, the bodies the inspector
        # shows, is kept only with log_content, and only for the retention time.
        """CREATE TABLE IF NOT EXISTS requests (
            id TEXT PRIMARY KEY,
            created_at {real} NOT NULL,
            day TEXT NOT NULL,
            key_id TEXT,
            model TEXT,
            deployment TEXT,
            method TEXT NOT NULL,
            path TEXT NOT NULL,
            status INTEGER NOT NULL,
            error_type TEXT,
            attempts INTEGER NOT NULL,
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            cached_tokens INTEGER NOT NULL,
            counted_by TEXT,
            cost {real} NOT NULL,
            cache TEXT,
            saved {real} NOT NULL,
            queue_ms {real},
            connect_ms {real},
            first_byte_ms {real},
            first_token_ms {real},
            upstream_ms {real},
            total_ms {real},
            content {blob}
        )""",
        "CREATE INDEX IF NOT EXISTS requests_created ON requests (created_at)",
        "CREATE INDEX IF NOT EXISTS requests_by_key ON requests (key_id, created_at)",
        """CREATE TABLE IF NOT EXISTS cached_replies (
            key TEXT PRIMARY KEY,
            expires_at {real} NOT NULL,
            body {blob} NOT NULL
        )""",
    ),
)
VERSIONS = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
VERSION = "SELECT max(version) FROM schema_version"
TOOK = "INSERT INTO schema_version (version) VALUES (?)"
