"""What radassist keeps: the one database module (SQLite by default, PostgreSQL by URL; migrations in
``migrations/``), the audit trail, saved conversations, accounts and retention."""
