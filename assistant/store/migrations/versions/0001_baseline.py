"""The schema of conversations, users and the audit trail, as the SQLite stores made it before migrations.

Creates only what is missing, so an existing SQLite file (tables from the stores' ``CREATE TABLE IF NOT EXISTS``,
perhaps from before conversation revisions) is adopted with every row kept. Times are Unix seconds (double);
JSON (citations, chunk ids) is TEXT.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY is the rowid


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    tables = set(inspector.get_table_names())
    if "chat_sessions" not in tables:
        op.create_table(
            "chat_sessions",
            sa.Column("chat_id", sa.Text(), primary_key=True),
            sa.Column("owner", sa.Text(), nullable=False),
            sa.Column("title", sa.Text(), nullable=False),
            sa.Column("created_at", sa.Double(), nullable=False),
            sa.Column("updated_at", sa.Double(), nullable=False),
            sa.Column("mode", sa.Text()),
            sa.Column("report_id", sa.Text()),
            sa.Column("citations", sa.Text(), nullable=False),
            sa.Column("revision", sa.Integer(), nullable=False, server_default="1"),
        )
    elif "revision" not in {c["name"] for c in inspector.get_columns("chat_sessions")}:  # before revisions
        op.add_column("chat_sessions", sa.Column("revision", sa.Integer(), nullable=False, server_default="1"))
    indexes = {i["name"] for i in inspector.get_indexes("chat_sessions")} if "chat_sessions" in tables else set()
    if "chat_sessions_by_owner" not in indexes:
        op.create_index("chat_sessions_by_owner", "chat_sessions", ["owner", "updated_at"])
    if "chat_messages" not in tables:
        op.create_table(
            "chat_messages",
            sa.Column("chat_id", sa.Text(), sa.ForeignKey("chat_sessions.chat_id", ondelete="CASCADE"), nullable=False),
            sa.Column("position", sa.Integer(), nullable=False),
            sa.Column("role", sa.Text(), nullable=False),
            sa.Column("text", sa.Text(), nullable=False),
            sa.Column("note", sa.Text()),
            sa.PrimaryKeyConstraint("chat_id", "position"),
        )
    if "users" not in tables:
        op.create_table(
            "users",
            sa.Column("name", sa.Text(), primary_key=True),
            sa.Column("password_hash", sa.Text(), nullable=False),
            sa.Column("created_at", sa.Double(), nullable=False),
        )
    if "audit" not in tables:
        op.create_table(
            "audit",
            sa.Column("id", _ID, primary_key=True, autoincrement=True),
            sa.Column("ts", sa.Double(), nullable=False),
            sa.Column("mode", sa.Text(), nullable=False),
            sa.Column("template", sa.Text(), nullable=False),
            sa.Column("model", sa.Text(), nullable=False),
            sa.Column("chunk_ids", sa.Text(), nullable=False),
            sa.Column("latency_ms", sa.Integer(), nullable=False),
            sa.Column("output_chars", sa.Integer(), nullable=False),
            sa.Column("outcome", sa.Text(), nullable=False),
            sqlite_autoincrement=True,  # as before: ids never reused, so "rows after id N" stays exact
        )
    if "audit_by_ts" not in ({i["name"] for i in inspector.get_indexes("audit")} if "audit" in tables else set()):
        op.create_index("audit_by_ts", "audit", ["ts"])
