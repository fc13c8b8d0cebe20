"""Engines and sessions: SQLite tuned so the door service and the admin UI share one file.

WAL lets readers and the one writer work at once; ``busy_timeout`` makes a writer wait for the
other instead of failing; ``synchronous=FULL`` because WAL with NORMAL can lose the last
commits on power loss, and the access log must not. ``secure_delete`` overwrites deleted
rows, so an erased person's embeddings do not linger in free pages. A full disk becomes one
StorageFull error and a lock held past the busy timeout one KioskError, not a driver message.
A disk already full when the database is opened (WAL cannot even make its index file) opens
it read-only instead: reads work, and every write fails with the one "disk full" line.
Sessions from ``session_factory`` hash-chain audit rows (db/audit_chain.py).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from db import audit_chain
from db.errors import KioskError, StorageFull

MIGRATIONS = Path(__file__).with_name("migrations")
log = logging.getLogger(__name__)


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
    database = parsed.database or ":memory:"
    timeout = busy_timeout_ms / 1000

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(database, timeout=timeout, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError:
            conn.close()
            if database == ":memory:" or not disk_full(Path(database)):
                raise
            return _read_only(database, timeout)
        for pragma in ("foreign_keys=ON", f"busy_timeout={int(busy_timeout_ms)}", "synchronous=FULL", "secure_delete=ON"):
            conn.execute(f"PRAGMA {pragma}")
        return conn

    engine = create_engine(url, creator=connect)

    @event.listens_for(engine, "checkout")
    def _writable_again(dbapi_conn, _record, _proxy) -> None:  # type: ignore[no-untyped-def]
        if isinstance(dbapi_conn, _ReadOnlyConnection) and not disk_full(Path(database)):
            raise DisconnectionError("disk has room again: reconnect read-write")

    @event.listens_for(engine, "handle_error")
    def _one_line_errors(ctx: ExceptionContext) -> KioskError | None:
        code = getattr(ctx.original_exception, "sqlite_errorname", "")
        if code == "SQLITE_FULL" or (code.startswith("SQLITE_READONLY") and disk_full(Path(database))):
            return StorageFull(f"disk full: the database {parsed.database} cannot grow; free space on its disk")
        if code == "SQLITE_BUSY":
            return KioskError(
                f"database busy: another process held {parsed.database} for over {busy_timeout_ms} ms "
                "(database.busy_timeout_ms)"
            )
        return None

    return engine


def disk_full(path: Path) -> bool:
    """Whether the disk holding ``path`` has no room left for SQLite's next pages (less than 64 KiB)."""
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


def _read_only(database: str, timeout: float) -> sqlite3.Connection:
    """The database as it is on disk, for reading while the disk is full (said once per process)."""
    if database not in read_only_databases:
        read_only_databases.add(database)
        log.info("disk full: %s is open read-only until space is freed on its disk", database)
    conn = sqlite3.connect(f"file:{database}?immutable=1", uri=True, timeout=timeout, check_same_thread=False,
                           factory=_ReadOnlyConnection)
    conn.execute("PRAGMA query_only=ON")
    return conn


class _ReadOnlyConnection(sqlite3.Connection):
    """A connection opened read-only on a full disk: the pool drops it once there is room again."""


read_only_databases: set[str] = set()  # opened read-only in this process because their disk was full


def opened_read_only(engine: Engine) -> bool:
    """Whether this engine's database had to be opened read-only (its disk was full when connecting)."""
    return engine.url.database in read_only_databases


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
