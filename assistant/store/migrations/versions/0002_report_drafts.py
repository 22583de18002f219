"""Report drafts: drafts with their owner and current version (the compare-and-set counter), their versions, the
drafting dialogue (with the process applying a pending dictation) and the export records.

Like 0001, creates only what is missing: a SQLite file whose report tables were made by the report store's own
``CREATE TABLE IF NOT EXISTS`` (perhaps from before owners, or before the dialogue named its worker) is adopted
with every row. Drafts from before owners become the local user's (owner ""): before, every draft was visible to
everyone, and the one party surely entitled to them is whoever runs the machine. Times are Unix seconds (double);
a version's content is JSON as TEXT.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

logger = logging.getLogger(__name__)

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY is the rowid
_LOCAL_OWNER = ""  # assistant.report.store.LOCAL_OWNER (a migration does not import the code it migrates)


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    tables = set(inspector.get_table_names())

    def columns(table: str) -> set[str]:
        return {c["name"] for c in inspector.get_columns(table)}

    def indexes(table: str) -> set[str | None]:
        return {i["name"] for i in inspector.get_indexes(table)}

    if "report_drafts" not in tables:
        op.create_table(
            "report_drafts",
            sa.Column("report_id", sa.Text(), primary_key=True),
            sa.Column("template", sa.Text(), nullable=False),
            sa.Column("patient_key", sa.Text()),
            sa.Column("created_at", sa.Double(), nullable=False),
            sa.Column("updated_at", sa.Double(), nullable=False),
            sa.Column("current_version", sa.Integer(), nullable=False),
            sa.Column("owner", sa.Text(), nullable=False),
        )
    elif "owner" not in columns("report_drafts"):  # a database from before owners: its drafts become the local user's
        op.add_column("report_drafts", sa.Column("owner", sa.Text(), nullable=False, server_default=_LOCAL_OWNER))
        count = bind.execute(sa.text("SELECT COUNT(*) FROM report_drafts")).scalar_one()
        logger.info("report drafts migrated: %d earlier draft(s) now belong to the local user", count)
    if "report_drafts_by_owner" not in (indexes("report_drafts") if "report_drafts" in tables else set()):
        op.create_index("report_drafts_by_owner", "report_drafts", ["owner", "updated_at"])

    if "report_versions" not in tables:
        op.create_table(
            "report_versions",
            sa.Column("report_id", sa.Text(), sa.ForeignKey("report_drafts.report_id"), nullable=False),
            sa.Column("number", sa.Integer(), nullable=False),
            sa.Column("created_at", sa.Double(), nullable=False),
            sa.Column("action", sa.Text(), nullable=False),
            sa.Column("summary", sa.Text(), nullable=False),
            sa.Column("base", sa.Integer()),
            sa.Column("content", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("report_id", "number"),
        )

    if "report_messages" not in tables:
        op.create_table(
            "report_messages",
            sa.Column("id", _ID, primary_key=True, autoincrement=True),
            sa.Column("report_id", sa.Text(), sa.ForeignKey("report_drafts.report_id"), nullable=False),
            sa.Column("created_at", sa.Double(), nullable=False),
            sa.Column("role", sa.Text(), nullable=False),
            sa.Column("text", sa.Text(), nullable=False),
            sa.Column("status", sa.Text(), nullable=False),
            sa.Column("version", sa.Integer()),
            sa.Column("worker", sa.Text()),  # the process applying a pending dictation (pid:start)
            sqlite_autoincrement=True,  # as before: ids never reused, so a retried turn is never another's
        )
    elif "worker" not in columns("report_messages"):  # from before interrupted dictations were offered again
        op.add_column("report_messages", sa.Column("worker", sa.Text()))
    if "report_messages_by_report" not in (indexes("report_messages") if "report_messages" in tables else set()):
        op.create_index("report_messages_by_report", "report_messages", ["report_id", "id"])

    if "report_exports" not in tables:
        op.create_table(
            "report_exports",
            sa.Column("id", _ID, primary_key=True, autoincrement=True),
            sa.Column("report_id", sa.Text(), sa.ForeignKey("report_drafts.report_id"), nullable=False),
            sa.Column("owner", sa.Text(), nullable=False),
            sa.Column("version", sa.Integer(), nullable=False),
            sa.Column("format", sa.Text(), nullable=False),
            sa.Column("created_at", sa.Double(), nullable=False),
            sqlite_autoincrement=True,
        )
