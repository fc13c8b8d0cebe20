"""Engines and sessions: SQLite tuned so the door service and the admin UI share one file.

WAL lets readers and the one writer work at once; ``busy_timeout`` makes a writer wait for the
other instead of failing; ``synchronous=FULL`` because WAL with NORMAL can lose the last
commits on power loss, and the access log must not. ``secure_delete`` overwrites deleted
rows, so an erased person's embeddings do not linger in free pages. A full disk becomes one
StorageFull error and a lock held past the busy timeout one KioskError, not a driver message.
Sessions from ``session_factory`` hash-chain audit rows (db/audit_chain.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.orm import Session, sessionmaker

from db import audit_chain
from db.errors import KioskError, StorageFull

MIGRATIONS = Path(__file__).with_name("migrations")


def make_engine(url: str, busy_timeout_ms: int = 10000) -> Engine:
    """An engine with the pragmas above on every SQLite connection; the file is private (0600)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            path.touch(mode=0o600)
    engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA secure_delete=ON")
        cur.close()

    @event.listens_for(engine, "handle_error")
    def _one_line_errors(ctx: ExceptionContext) -> KioskError | None:
        code = getattr(ctx.original_exception, "sqlite_errorname", "")
        if code == "SQLITE_FULL":
            return StorageFull(f"disk full: the database {parsed.database} cannot grow; free space on its disk")
        if code == "SQLITE_BUSY":
            return KioskError(
                f"database busy: another process held {parsed.database} for over {busy_timeout_ms} ms "
                "(database.busy_timeout_ms)"
            )
        return None

    return engine


def session_factory(engine: Engine, audit_key: bytes | None = None) -> sessionmaker[Session]:
    """Sessions for the kiosk's database; every AccessEvent/AdminAction they add is hash-chained (keyed with audit_key)."""
    sessions = sessionmaker(engine, expire_on_commit=False)
    audit_chain.install(sessions, audit_key)
    return sessions


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to date (Alembic), on the given engine's connection."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def restrict_permissions(path: Path) -> None:
    """Biometric data is the service user's alone."""
    if path.exists():
        os.chmod(path, 0o700 if path.is_dir() else 0o600)
