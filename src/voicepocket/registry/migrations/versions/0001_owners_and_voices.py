"""Owners and their voices.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "owners",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "voices",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "owner",
            sa.String(64),
            sa.ForeignKey("owners.name", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("slug", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("public", sa.Boolean, nullable=False),
        sa.Column("model_key", sa.String(256), nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=False),
        sa.Column("config_sha256", sa.String(64), nullable=False),
        sa.Column("sample_rate", sa.Integer, nullable=False),
        sa.Column("cost_bytes", sa.BigInteger, nullable=False),
        sa.Column("load_s", sa.Float, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("owner", "slug", name="uq_voices_owner_slug"),
    )


def downgrade() -> None:
    op.drop_table("voices")
    op.drop_table("owners")
