"""Database access: the pool, the embedded server, migrations and SQL per domain."""
