"""oidc identities: accounts at OpenID providers linked to users

Revision ID: 0009_oidc_identities
Revises: 0008_second_factor
Create Date: 2026-12-20 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_oidc_identities"
down_revision: str | None = "0008_second_factor"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A new table only: replicas still running the previous code keep working
    # during a rolling deploy (they offer no OpenID sign-in, and read no link).
    op.create_table(
        "oidc_identities",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_oidc_identities_provider_subject",
        "oidc_identities",
        ["provider", "subject"],
        unique=True,
    )
    op.create_index("ix_oidc_identities_user_id", "oidc_identities", ["user_id"])


def downgrade() -> None:
    op.drop_table("oidc_identities")
