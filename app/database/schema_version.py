"""Whether the database's schema is one this release can serve.

During a rolling update (Docker Swarm starts new replicas while the old ones
serve, and runs the migrations beside them) a new replica must not take traffic
before its migrations are applied, and an old replica must keep serving once
they are. So a replica is ready when the database's revision is its own head,
or one it does not know (a later release's: migrations stay compatible with the
release before), and not ready while the revision is one of its own, older ones.

The revisions are read from migrations/versions/ once, with `ast`: importing
Alembic in every worker to answer a health check would cost memory.
"""

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

VERSIONS_DIR = Path(__file__).resolve().parents[2] / "migrations" / "versions"


@dataclass(frozen=True, slots=True)
class Revisions:
    head: str
    known: frozenset[str]


def _assigned_strings(path: Path) -> dict[str, str | None]:
    """Module-level `name = "text"` (or `= None`) assignments, annotated or not."""
    values: dict[str, str | None] = {}
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        if isinstance(node, ast.AnnAssign):
            targets: list[ast.expr] = [node.target]
        elif isinstance(node, ast.Assign):
            targets = node.targets
        else:
            continue
        value = node.value.value if isinstance(node.value, ast.Constant) else ...
        if isinstance(value, str) or value is None:
            values.update({target.id: value for target in targets if isinstance(target, ast.Name)})
    return values


@functools.cache
def release_revisions(versions_dir: Path = VERSIONS_DIR) -> Revisions:
    """This release's migrations: their single head and every revision id."""
    parents: dict[str, str | None] = {}
    for path in sorted(versions_dir.glob("*.py")):
        values = _assigned_strings(path)
        if isinstance(values.get("revision"), str):
            parents[str(values["revision"])] = values.get("down_revision")
    heads = set(parents) - set(parents.values())
    if len(heads) != 1:
        raise RuntimeError(f"expected one migration head in {versions_dir}, found {sorted(heads)}")
    return Revisions(head=heads.pop(), known=frozenset(parents))


async def schema_problem(connection: AsyncConnection) -> str | None:
    """None when this release can serve the database's schema, else why not."""
    revisions = release_revisions()
    # Asked first, so that a database never migrated logs no error at every check.
    if not await connection.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL")):
        return f"database not migrated yet (this release needs {revisions.head})"
    result = await connection.execute(text("SELECT version_num FROM alembic_version"))
    current = {row[0] for row in result}
    if revisions.head in current or not current <= revisions.known:
        return None
    behind = ", ".join(sorted(current)) or "no revision"
    return f"database schema at {behind}, this release needs {revisions.head} (migrations pending)"
