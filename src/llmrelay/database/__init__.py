"""The gateway's database: jobs, keys, usage and the request inspector's records, in one
SQLite file or one PostgreSQL database."""

from .database import Connection, Database, is_postgres, open_database, where

__all__ = ["Connection", "Database", "is_postgres", "open_database", "where"]
