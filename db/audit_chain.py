"""The tamper-evident audit trail: every access event and admin action is hash-chained.

Each new row gets ``prev_hash`` (the row before it in the same table) and ``row_hash`` =
HMAC-SHA256, under the audit key, over ``prev_hash`` and the row's immutable content (plain
sha256 where no key is configured: then anyone who can write the database can also write a
row that verifies, which is why a site sets ``audit.key_file``, kept outside the data
directory). The key travels in the session factory's ``info``, so every session of a keyed
factory chains and verifies with it. A ``before_flush`` listener on the
kiosk's session factory does it, so code that adds AccessEvent or AdminAction rows through the
ORM is chained without calling anything. Reading the last hash and inserting are one atomic
step: on SQLite the session takes the write lock first (``BEGIN IMMEDIATE``), so the door
service and the admin app, two processes, can both append without forking the chain; on
PostgreSQL a transaction-scoped advisory lock does the same.

Not hashed, on purpose: ``person_id`` (set NULL when a person is erased), ``thumbnail_path``
(thumbnails expire under the privacy retention setting) and ``id``. Rows already chained are
append-only: changing a hashed field or deleting one through the ORM raises. Purging old rows
(``kiosk audit purge``) records an anchor per chain, the hash of the last purged row, and
verification starts from it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, cast

from sqlalchemy import Connection, delete, func, insert, inspect, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from db.errors import KioskError
from db.models import AccessEvent, AdminAction, AuditAnchor, utcnow

CHAINS: dict[str, type[AccessEvent] | type[AdminAction]] = {
    AccessEvent.__tablename__: AccessEvent,
    AdminAction.__tablename__: AdminAction,
}
HASHED_FIELDS: dict[type[Any], tuple[str, ...]] = {
    AccessEvent: (
        "time", "door", "person_name", "granted", "probability", "reason", "recogniser",
        "model_version", "track_id", "tailgating", "details",
    ),
    AdminAction: ("time", "actor", "action", "subject", "details"),
}
# Fields added after rows were chained: hashed only when set, so older rows verify unchanged.
LATER_HASHED: dict[type[Any], tuple[str, ...]] = {AccessEvent: ("liveness",)}  # issue 14
# Column types fixed up before hashing so the value hashed is the value stored and read back
# (a numpy float32 probability, a tuple in details, a missing default).
_FLOATS = {"probability", "liveness"}
_INTS = {"model_version", "track_id"}
_BOOLS = {"granted", "tailgating"}
SESSION_KEY = object()  # verify_chain's default: the key of the session's factory
_PG_LOCK_KEY = 0x6B696F736B  # "kiosk": one advisory lock serialises all chain appends


class AuditTamperError(KioskError):
    """An attempt to change or delete a chained audit row through the ORM."""


@dataclass(frozen=True)
class BrokenLink:
    id: int
    time: datetime | None
    problem: str

    def __str__(self) -> str:
        when = self.time.isoformat() if self.time else "?"
        return f"row {self.id} at {when}: {self.problem}"


@dataclass(frozen=True)
class ChainReport:
    chain: str
    rows: int
    anchor_hash: str | None  # hash of the last purged row, where verification starts
    head_hash: str | None  # hash of the newest row: keep a copy elsewhere to detect truncation
    broken: BrokenLink | None

    @property
    def ok(self) -> bool:
        return self.broken is None


def install(sessions: sessionmaker[Session], key: bytes | None = None) -> None:
    """Chain every AccessEvent/AdminAction the sessions of this factory add (keyed when ``key`` is given)."""
    from sqlalchemy import event

    sessions.kw.setdefault("info", {})["audit_key"] = key
    event.listen(sessions, "before_flush", _before_flush)


def content_hash(table: str, prev_hash: str | None, content: dict[str, Any], key: bytes | None = None) -> str:
    """The row's hash: HMAC-SHA256 under ``key``; the unkeyed sha256 of logs from before keys (and of forgers)."""
    body = json.dumps({"chain": table, "prev": prev_hash, **content}, sort_keys=True, separators=(",", ":")).encode()
    if key is None:
        return hashlib.sha256(body).hexdigest()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def session_key(session: Session) -> bytes | None:
    return session.info.get("audit_key")


def row_content(row: AccessEvent | AdminAction) -> dict[str, Any]:
    """The hashed fields of a row as JSON-ready values (times as UTC ISO with microseconds)."""
    out: dict[str, Any] = {}
    for name in HASHED_FIELDS[type(row)]:
        value = getattr(row, name)
        if isinstance(value, datetime):
            value = value.astimezone(timezone.utc).isoformat(timespec="microseconds")
        out[name] = value
    for name in LATER_HASHED.get(type(row), ()):
        if getattr(row, name) is not None:
            out[name] = getattr(row, name)
    return out


def lock_for_append(session: Session) -> Connection:
    """Take the database's write lock for this transaction (no-op when it is already held)."""
    conn = session.connection()
    if conn.dialect.name == "sqlite":
        dbapi = conn.connection.dbapi_connection
        # pysqlite opens a transaction only at the first write, which takes the write lock; so
        # an open transaction already holds it, and otherwise we open one that takes it now.
        if dbapi is not None and not dbapi.in_transaction:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    return conn


def tail_hash(conn: Connection, table: str) -> str | None:
    """The hash a new row must link to: the newest row's, else the purge anchor's, else none."""
    model = CHAINS[table]
    last = conn.execute(select(model.row_hash).order_by(model.id.desc()).limit(1)).first()
    if last is not None:
        return last[0]
    return conn.execute(select(AuditAnchor.row_hash).where(AuditAnchor.chain == table)).scalar_one_or_none()


def _before_flush(session: Session, _context: object, _instances: object) -> None:
    for obj in session.deleted:
        if type(obj) in HASHED_FIELDS:
            raise AuditTamperError(f"{type(obj).__tablename__} row {obj.id} is part of the audit chain and cannot be deleted")
    for obj in session.dirty:
        if type(obj) in HASHED_FIELDS:
            state = inspect(obj)
            fields = (*HASHED_FIELDS[type(obj)], *LATER_HASHED.get(type(obj), ()), "prev_hash", "row_hash")
            changed = [f for f in fields if state.attrs[f].history.has_changes()]
            if changed:
                raise AuditTamperError(
                    f"{type(obj).__tablename__} row {obj.id} is part of the audit chain; {', '.join(changed)} cannot change"
                )
    new = sorted((o for o in session.new if type(o) in HASHED_FIELDS), key=lambda o: inspect(o).insert_order)
    if not new:
        return
    conn = lock_for_append(session)
    tails: dict[str, str | None] = {}
    for obj in new:
        table = type(obj).__tablename__
        if table not in tails:
            tails[table] = tail_hash(conn, table)
        _normalise(obj)
        obj.prev_hash = tails[table]
        obj.row_hash = tails[table] = content_hash(table, obj.prev_hash, row_content(obj), session_key(session))


def _normalise(obj: AccessEvent | AdminAction) -> None:
    """Apply defaults and plain Python types now, so what is hashed is exactly what is stored."""
    if obj.time is None:
        obj.time = utcnow()
    obj.details = json.loads(json.dumps(obj.details if obj.details is not None else {}))
    if isinstance(obj, AccessEvent):
        if obj.tailgating is None:
            obj.tailgating = False
        for name in _FLOATS | _INTS | _BOOLS:
            value = getattr(obj, name)
            if value is not None:
                kind = float if name in _FLOATS else int if name in _INTS else bool
                setattr(obj, name, kind(value))


def verify_chain(session: Session, table: str, key: bytes | None | object = SESSION_KEY) -> ChainReport:
    """Walk one chain oldest to newest; the first row whose link or content does not match is named.

    Hashes are checked under the session's audit key unless ``key`` says otherwise (None: unkeyed).
    """
    model = CHAINS[table]
    key = session_key(session) if key is SESSION_KEY else cast("bytes | None", key)
    anchor = session.get(AuditAnchor, table)
    expected_prev = anchor.row_hash if anchor else None
    rows = 0
    head = expected_prev
    query = select(model).order_by(model.id).execution_options(yield_per=1000)
    for row in session.scalars(query):
        rows += 1
        if row.row_hash is None:
            return ChainReport(table, rows, _anchor(anchor), head, BrokenLink(
                row.id, row.time, "row was never chained (written without the kiosk's session factory)"))
        if row.prev_hash != expected_prev:
            what = "the purge anchor" if rows == 1 and anchor else "the row before it"
            return ChainReport(table, rows, _anchor(anchor), head, BrokenLink(
                row.id, row.time,
                f"link broken: prev_hash {_short(row.prev_hash)} but {what} hashes to {_short(expected_prev)} "
                "(a row was deleted, inserted or reordered)"))
        recomputed = content_hash(table, row.prev_hash, row_content(row), key)
        if not hmac.compare_digest(recomputed, row.row_hash):
            if key is not None and content_hash(table, row.prev_hash, row_content(row)) == row.row_hash:
                problem = ("chained without the audit key (a row forged by someone who can write the database, "
                           "or a log from before audit.key_file was set: `kiosk audit rekey` moves such a log under the key)")
            else:
                problem = f"content altered: stored row_hash {_short(row.row_hash)}, content hashes to {_short(recomputed)}"
            return ChainReport(table, rows, _anchor(anchor), head, BrokenLink(row.id, row.time, problem))
        expected_prev = head = row.row_hash
    return ChainReport(table, rows, _anchor(anchor), head, None)


def verify_all(sessions: sessionmaker[Session]) -> list[ChainReport]:
    with sessions() as session:
        return [verify_chain(session, table) for table in CHAINS]


def _anchor(anchor: AuditAnchor | None) -> str | None:
    return anchor.row_hash if anchor else None


def _short(value: str | None) -> str:
    return "none" if value is None else value[:12]


@dataclass(frozen=True)
class PurgedRange:
    chain: str
    rows: int
    through_id: int | None
    thumbnails: list[str]


def purge_before(session: Session, cutoff: datetime) -> list[PurgedRange]:
    """Delete, per chain, the oldest rows up to the first one at or after ``cutoff``; move the anchor.

    Only a prefix (by id) is ever removed, so what stays is still one unbroken chain that
    starts at the anchor. The caller commits; the write lock is taken here.
    """
    conn = lock_for_append(session)
    out: list[PurgedRange] = []
    for table, model in CHAINS.items():
        first_kept = conn.execute(select(model.id).where(model.time >= cutoff).order_by(model.id).limit(1)).scalar()
        last_id = conn.execute(select(model.id).order_by(model.id.desc()).limit(1)).scalar()
        through = (first_kept - 1) if first_kept is not None else last_id
        count = conn.execute(select(func.count(model.id)).where(model.id <= through)).scalar_one() if through is not None else 0
        if not count:
            out.append(PurgedRange(table, 0, None, []))
            continue
        through = conn.execute(select(func.max(model.id)).where(model.id <= through)).scalar_one()
        anchor_hash = conn.execute(select(model.row_hash).where(model.id == through)).scalar_one()
        thumbs: list[str] = []
        if model is AccessEvent:
            thumbs = [p for (p,) in conn.execute(
                select(AccessEvent.thumbnail_path).where(AccessEvent.id <= through, AccessEvent.thumbnail_path.is_not(None)))]
        conn.execute(delete(model).where(model.id <= through))
        previous = conn.execute(select(AuditAnchor.purged_rows).where(AuditAnchor.chain == table)).scalar_one_or_none()
        values = {"through_id": through, "row_hash": anchor_hash, "time": utcnow(), "purged_rows": (previous or 0) + count}
        if previous is None:
            conn.execute(insert(AuditAnchor).values(chain=table, **values))
        else:
            conn.execute(update(AuditAnchor).where(AuditAnchor.chain == table).values(**values))
        out.append(PurgedRange(table, count, through, thumbs))
    return out


def rekey(session: Session, key: bytes) -> dict[str, tuple[str | None, str | None]]:
    """Move an unkeyed log under ``key``: every row's hashes recomputed as HMACs, in one transaction.

    The log is verified unkeyed first (a broken chain is refused, not blessed). Links keep
    starting from the purge anchor. Returns each chain's (unkeyed head, keyed head); the
    caller records the old heads in an admin action and commits.
    """
    conn = lock_for_append(session)
    heads: dict[str, tuple[str | None, str | None]] = {}
    for table, model in CHAINS.items():
        report = verify_chain(session, table, key=None)
        if report.broken is not None:
            raise KioskError(f"audit log {table} does not verify unkeyed, not rekeyed: {report.broken}")
        prev = conn.execute(select(AuditAnchor.row_hash).where(AuditAnchor.chain == table)).scalar_one_or_none()
        for row in session.scalars(select(model).order_by(model.id).execution_options(yield_per=1000)):
            new = content_hash(table, prev, row_content(row), key)
            conn.execute(update(model).where(model.id == row.id).values(prev_hash=prev, row_hash=new))
            prev = new
        heads[table] = (report.head_hash, prev)
    session.expire_all()
    return heads


def written_before_key(session: Session, table: str, key: bytes) -> bool:
    """A log from before the key: its oldest and newest rows both carry the unkeyed hash.

    Only such a log is for `rekey`. A keyed log whose newest rows are unkeyed was appended to
    by someone without the key: that is for `verify` to report, never to be rekeyed.
    """
    model = CHAINS[table]
    ends = [session.scalars(select(model).order_by(order).limit(1)).first() for order in (model.id, model.id.desc())]
    return all(
        row is not None and row.row_hash == content_hash(table, row.prev_hash, row_content(row))
        and row.row_hash != content_hash(table, row.prev_hash, row_content(row), key)
        for row in ends
    )


def find_head(sessions: sessionmaker[Session], head: str) -> tuple[str, int] | None:
    """The chain holding a kept head hash and how many rows came after it; None if no chain holds it.

    A head equal to a purge anchor counts as found (its row was aged out by `kiosk audit purge`).
    """
    with sessions() as session:
        for table, model in CHAINS.items():
            row_id = session.scalar(select(model.id).where(model.row_hash == head))
            if row_id is not None:
                return table, session.scalar(select(func.count(model.id)).where(model.id > row_id)) or 0
            anchor = session.get(AuditAnchor, table)
            if anchor is not None and anchor.row_hash == head:
                return table, session.scalar(select(func.count(model.id))) or 0
    return None
