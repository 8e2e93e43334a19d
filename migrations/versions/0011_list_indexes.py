"""list indexes: items by each sort (an owner's and everyone's), trigram search,
and the expiry columns the sweep deletes by

Revision ID: 0011_list_indexes
Revises: 0010_passkeys
Create Date: 2027-01-24 12:00:00

Building these on a large `items` table takes minutes and blocks writes to it
meanwhile (reads go on). To avoid that, create them beforehand with CREATE INDEX
CONCURRENTLY under the same names: every CREATE here is IF NOT EXISTS
(docs/operations.md).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_list_indexes"
down_revision: str | None = "0010_passkeys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SORT_FIELDS = ("name", "price", "created_at")
SEARCHED_FIELDS = ("name", "description")
# The sweep's deletes, each by an expiry or age column: (index, table, column, where).
SWEEP_INDEXES: tuple[tuple[str, str, str, str | None], ...] = (
    ("ix_auth_sessions_expires_at", "auth_sessions", "expires_at", None),
    ("ix_auth_sessions_revoked_at", "auth_sessions", "revoked_at", "revoked_at IS NOT NULL"),
    ("ix_refresh_tokens_expires_at", "refresh_tokens", "expires_at", None),
    ("ix_login_failures_failed_at", "login_failures", "failed_at", None),
    ("ix_one_time_tokens_expires_at", "one_time_tokens", "expires_at", None),
    ("ix_mail_outbox_done_created_at", "mail_outbox", "created_at", "next_attempt_at IS NULL"),
)


def upgrade() -> None:
    # Trusted since Postgres 13: the database's owner may create it. It ships in
    # Postgres' contrib (the postgres image has it; Debian: postgresql-contrib).
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for field in SORT_FIELDS:
        op.create_index(
            f"ix_items_owner_{field}", "items", ["owner_id", field, "id"], if_not_exists=True
        )
        op.create_index(f"ix_items_{field}", "items", [field, "id"], if_not_exists=True)
    # Its work is done by ix_items_owner_created_at (owner_id, created_at, id).
    op.drop_index("ix_items_owner_created", table_name="items")
    for field in SEARCHED_FIELDS:
        op.create_index(
            f"ix_items_{field}_trgm",
            "items",
            [field],
            postgresql_using="gin",
            postgresql_ops={field: "gin_trgm_ops"},
            if_not_exists=True,
        )
    for name, table, column, where in SWEEP_INDEXES:
        op.create_index(
            name,
            table,
            [column],
            postgresql_where=sa.text(where) if where else None,
            if_not_exists=True,
        )


def downgrade() -> None:
    for name, table, _, _ in SWEEP_INDEXES:
        op.drop_index(name, table_name=table)
    for field in SEARCHED_FIELDS:
        op.drop_index(f"ix_items_{field}_trgm", table_name="items")
    op.create_index("ix_items_owner_created", "items", ["owner_id", "created_at"])
    for field in SORT_FIELDS:
        op.drop_index(f"ix_items_{field}", table_name="items")
        op.drop_index(f"ix_items_owner_{field}", table_name="items")
    # pg_trgm stays: another schema object may use it, and it costs nothing unused.
