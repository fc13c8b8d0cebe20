"""Model artifacts at the site: stored in the database with their version, fetched by doors.

A version's folder is kept on the admin machine that trained it; doors cannot read that disk,
so on a site database the files are stored in ``site_artifacts`` in the same commit that marks
the version complete (a door never sees a complete version without its files), and deleted
when an erasure deletes the artifact.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.orm import Session

from db.models import SiteArtifact


def publish(session: Session, run_id: int, folder: Path) -> None:
    """Store every file of a version's folder (on a PostgreSQL site only; SQLite keeps the folder)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(delete(SiteArtifact).where(SiteArtifact.training_run_id == run_id))
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        session.execute(insert(SiteArtifact).values(training_run_id=run_id, path=path.relative_to(folder).as_posix(), content=path.read_bytes()))


def forget(session: Session, run_id: int) -> None:
    """An erased version's files go from the site too (they may hold the erased person)."""
    session.execute(delete(SiteArtifact).where(SiteArtifact.training_run_id == run_id))


def fetch(conn: Connection, run_id: int, dest: Path) -> None:
    """Write a version's files into a fresh folder ``dest`` (private)."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True, mode=0o700)
    rows = conn.execute(select(SiteArtifact.path, SiteArtifact.content).where(SiteArtifact.training_run_id == run_id))
    for rel, content in rows:
        target = dest / rel
        if dest.resolve() not in target.resolve().parents:
            raise ValueError(f"artifact path escapes its folder: {rel}")
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        target.write_bytes(content)
        target.chmod(0o600)
