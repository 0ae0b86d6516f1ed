"""Asynchronous synthesis jobs.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "owner", sa.String(64), sa.ForeignKey("owners.name", ondelete="CASCADE"),
            nullable=False, index=True,
        ),
        sa.Column("voice", sa.String(200), nullable=False),
        sa.Column("input", sa.Text, nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("speed", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("chunks_done", sa.Integer, nullable=False),
        sa.Column("chunks_total", sa.Integer, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("synthesis_id", sa.String(32), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("jobs")
