"""Create prediction_logs.

Written out column by column (not derived from the live table) so this revision stays what it
was when later revisions change the table.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_logs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("area", sa.Float, nullable=False),
        sa.Column("bedrooms", sa.Integer, nullable=False),
        sa.Column("bathrooms", sa.Integer, nullable=False),
        sa.Column("stories", sa.Integer, nullable=False),
        sa.Column("mainroad", sa.String(32), nullable=False),
        sa.Column("guestroom", sa.String(32), nullable=False),
        sa.Column("basement", sa.String(32), nullable=False),
        sa.Column("hotwaterheating", sa.String(32), nullable=False),
        sa.Column("airconditioning", sa.String(32), nullable=False),
        sa.Column("parking", sa.Integer, nullable=False),
        sa.Column("prefarea", sa.String(32), nullable=False),
        sa.Column("furnishingstatus", sa.String(32), nullable=False),
        sa.Column(
            "prediction", sa.Float, nullable=True, comment="price; NULL when the call failed"
        ),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("batch_index", sa.Integer, nullable=False, server_default="0"),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("status", sa.SmallInteger, nullable=False, comment="HTTP status returned"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("request_id", "batch_index", name="uq_prediction_logs_request"),
    )
    op.create_index("ix_prediction_logs_created_at", "prediction_logs", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_prediction_logs_created_at", table_name="prediction_logs")
    op.drop_table("prediction_logs")
