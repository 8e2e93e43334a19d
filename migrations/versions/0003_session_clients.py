"""sessions record their client (address, user agent) and when they were last used

Revision ID: 0003_session_clients
Revises: 0002_session_epoch
Create Date: 2026-11-27 11:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_session_clients"
down_revision: str | None = "0002_session_epoch"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every column is nullable or defaulted: replicas still running the previous
    # code keep working during a rolling deploy.
    op.add_column(
        "auth_sessions",
        sa.Column(
            "last_used_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    for name, length in (
        ("user_agent", 512),
        ("client_address", 64),
        ("last_user_agent", 512),
        ("last_client_address", 64),
    ):
        op.add_column("auth_sessions", sa.Column(name, sa.String(length=length), nullable=True))
    # Existing sessions: last used at their login or their newest refresh token's
    # issue, and alive until their newest token expires, as a refresh now records
    # it (the sweep deletes a session once past its expires_at: none of its tokens
    # may expire later).
    op.execute("UPDATE auth_sessions SET last_used_at = created_at")
    op.execute(
        """
        UPDATE auth_sessions AS s
        SET last_used_at = GREATEST(s.created_at, t.last_issued),
            expires_at = GREATEST(s.expires_at, t.last_expiry)
        FROM (
            SELECT session_id, max(issued_at) AS last_issued, max(expires_at) AS last_expiry
            FROM refresh_tokens GROUP BY session_id
        ) AS t
        WHERE t.session_id = s.id
        """
    )


def downgrade() -> None:
    for name in (
        "last_client_address",
        "last_user_agent",
        "client_address",
        "user_agent",
        "last_used_at",
    ):
        op.drop_column("auth_sessions", name)
