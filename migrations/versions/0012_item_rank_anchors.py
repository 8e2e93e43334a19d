"""item rank anchors: every K-th item of each sort, and the log of the items'
changes since, so a deep `offset` of the list of all items is exact without
walking the index to it (app/services/item_ranks.py)

Revision ID: 0012_item_rank_anchors
Revises: 0011_list_indexes
Create Date: 2027-02-07 12:00:00

The tables start empty: the sweep builds the anchors once `items` is large
(LIST_RANK_MIN_ROWS). The triggers log every change of a sort column from now on;
a bulk load may disable them (ALTER TABLE items DISABLE TRIGGER USER) only while
item_rank_builds is empty: without anchors, the log means nothing.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_item_rank_anchors"
down_revision: str | None = "0011_list_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SORT_FIELDS = ("name", "price", "created_at")

# Inserts and deletes are logged per statement from its transition table (one
# INSERT … SELECT however many rows; a bulk load pays once); an update only when
# a sort column (or the id) really changed: the old key leaves, the new one comes.
FUNCTIONS = {
    "item_rank_log_inserted": """
        INSERT INTO item_rank_changes (id, name, price, created_at, delta)
        SELECT id, name, price, created_at, 1 FROM inserted;
        RETURN NULL;""",
    "item_rank_log_deleted": """
        INSERT INTO item_rank_changes (id, name, price, created_at, delta)
        SELECT id, name, price, created_at, -1 FROM deleted;
        RETURN NULL;""",
    "item_rank_log_updated": """
        INSERT INTO item_rank_changes (id, name, price, created_at, delta)
        VALUES (OLD.id, OLD.name, OLD.price, OLD.created_at, -1),
               (NEW.id, NEW.name, NEW.price, NEW.created_at, 1);
        RETURN NULL;""",
    # TRUNCATE fires no row triggers: the anchors would count rows that are gone.
    "item_rank_forget": """
        DELETE FROM item_rank_anchors;
        DELETE FROM item_rank_builds;
        DELETE FROM item_rank_changes;
        RETURN NULL;""",
}
TRIGGERS = {
    "item_rank_inserted": "AFTER INSERT ON items REFERENCING NEW TABLE AS inserted"
    " FOR EACH STATEMENT EXECUTE FUNCTION item_rank_log_inserted()",
    "item_rank_deleted": "AFTER DELETE ON items REFERENCING OLD TABLE AS deleted"
    " FOR EACH STATEMENT EXECUTE FUNCTION item_rank_log_deleted()",
    # Transition tables cannot go with a column list: this one is per row.
    "item_rank_updated": "AFTER UPDATE OF id, name, price, created_at ON items FOR EACH ROW"
    " WHEN ((OLD.id, OLD.name, OLD.price, OLD.created_at)"
    " IS DISTINCT FROM (NEW.id, NEW.name, NEW.price, NEW.created_at))"
    " EXECUTE FUNCTION item_rank_log_updated()",
    "item_rank_truncated": "AFTER TRUNCATE ON items FOR EACH STATEMENT"
    " EXECUTE FUNCTION item_rank_forget()",
}


def _sort_keys(*, nullable: bool) -> list[sa.Column[object]]:
    """The items' sort columns, typed as in `items`: the same comparisons, the same
    collation."""
    return [
        sa.Column("name", sa.String(200), nullable=nullable),
        sa.Column("price", sa.Numeric(12, 2), nullable=nullable),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=nullable),
    ]


def upgrade() -> None:
    op.create_table(
        "item_rank_builds",
        sa.Column("singleton", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("spacing", sa.Integer(), nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("singleton", name="ck_item_rank_builds_singleton"),
        sa.PrimaryKeyConstraint("singleton"),
    )
    op.create_table(
        "item_rank_anchors",
        sa.Column("field", sa.String(20), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        # An anchor holds its own sort's key only.
        *_sort_keys(nullable=True),
        sa.CheckConstraint(
            " AND ".join(f"((field = '{field}') = ({field} IS NOT NULL))" for field in SORT_FIELDS),
            name="ck_item_rank_anchors_key",
        ),
        sa.PrimaryKeyConstraint("field", "position"),
    )
    # No index, no key: appended by every write, read whole by a deep offset.
    op.create_table(
        "item_rank_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        *_sort_keys(nullable=False),
        sa.Column("delta", sa.SmallInteger(), nullable=False),
    )
    for name, body in FUNCTIONS.items():
        op.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN{body}\nEND\n$$"
        )
    for name, definition in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {definition}")


def downgrade() -> None:
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON items")
    for name in FUNCTIONS:
        op.execute(f"DROP FUNCTION {name}()")
    op.drop_table("item_rank_changes")
    op.drop_table("item_rank_anchors")
    op.drop_table("item_rank_builds")
