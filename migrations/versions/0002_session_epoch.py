"""session epoch on users, spender address on refresh tokens

Revision ID: 0002_session_epoch
Revises: 0001_initial
Create Date: 2026-11-27 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_session_epoch"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Both columns are nullable or defaulted: replicas still running the
    # previous code keep working during a rolling deploy.
    op.add_column(
        "users",
        sa.Column("session_epoch", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column("refresh_tokens", sa.Column("used_by", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("refresh_tokens", "used_by")
    op.drop_column("users", "session_epoch")
