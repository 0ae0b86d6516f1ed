"""API keys (stored hashed) and stored syntheses.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "owner", sa.String(64), sa.ForeignKey("owners.name", ondelete="CASCADE"),
            nullable=False, index=True,
        ),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "syntheses",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "owner", sa.String(64), sa.ForeignKey("owners.name", ondelete="CASCADE"),
            nullable=False, index=True,
        ),
        sa.Column("voice", sa.String(129), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("storage_key", sa.String(256), nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("duration_s", sa.Float, nullable=False),
        sa.Column("input_chars", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("syntheses")
    op.drop_table("api_keys")
