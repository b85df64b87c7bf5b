"""The SQLite state store: what was last synced, per collection and per item."""
