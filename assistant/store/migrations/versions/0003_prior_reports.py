"""Prior reports in the database, so every app replica finds a report the moment another one imported it.

``prior_reports``: one row per de-identified report (pseudonymous patient key, report pseudonym, shifted date,
modality). ``prior_chunks``: its sections as retrieval chunks with their embedding (float32 bytes, the model that
made them and its dimension), found by patient key through an index: a query reads one patient's chunks only and
ranks them with FAISS + BM25 built on the spot. Metadata is JSON as TEXT; dates are ISO text (already shifted).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tables = set(sa.inspect(op.get_bind()).get_table_names())
    if "prior_reports" not in tables:
        op.create_table(
            "prior_reports",
            sa.Column("patient_key", sa.Text(), nullable=False),
            sa.Column("report_id", sa.Text(), nullable=False),
            sa.Column("study_date", sa.Text(), nullable=False),
            sa.Column("modality", sa.Text(), nullable=False, server_default=""),
            sa.Column("imported_at", sa.Double(), nullable=False),
            sa.PrimaryKeyConstraint("patient_key", "report_id", "study_date"),  # led by the key: found by patient
        )
    if "prior_chunks" not in tables:
        op.create_table(
            "prior_chunks",
            sa.Column("chunk_id", sa.Text(), primary_key=True),  # content hash (key, report, date, section text)
            sa.Column("patient_key", sa.Text(), nullable=False),
            sa.Column("report_id", sa.Text(), nullable=False),
            sa.Column("study_date", sa.Text(), nullable=False),
            sa.Column("position", sa.Integer(), nullable=False),  # order within the report
            sa.Column("source", sa.Text(), nullable=False),
            sa.Column("title", sa.Text(), nullable=False),
            sa.Column("section", sa.Text(), nullable=False),
            sa.Column("text", sa.Text(), nullable=False),
            sa.Column("metadata", sa.Text(), nullable=False),
            sa.Column("model_id", sa.Text(), nullable=False),
            sa.Column("dim", sa.Integer(), nullable=False),
            sa.Column("vector", sa.LargeBinary(), nullable=False),  # (dim,) float32, little-endian, L2-normalised
            sa.Column("imported_at", sa.Double(), nullable=False),
        )
        op.create_index("prior_chunks_by_patient", "prior_chunks", ["patient_key"])


def downgrade() -> None:
    op.drop_index("prior_chunks_by_patient", table_name="prior_chunks")
    op.drop_table("prior_chunks")
    op.drop_table("prior_reports")
