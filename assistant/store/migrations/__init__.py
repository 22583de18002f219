"""radassist's schema migrations (Alembic scripts), applied by :func:`assistant.store.db.migrate`; no alembic.ini."""
