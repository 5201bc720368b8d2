"""Flow records: one row per destroyed connection-tracking entry, written to SQLite or
PostgreSQL in the background (``statewall run --flows``), read by ``statewall flows``."""
