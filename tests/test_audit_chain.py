"""The hash-chained audit trail: filled by any ORM write, atomic across processes, tamper-evident, purgeable."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, run_kiosk
from sqlalchemy import select

from db.audit_chain import AuditTamperError, verify_all
from db.models import AccessEvent, AdminAction
from db.session import make_engine, session_factory, upgrade
from kiosk.config import Settings
from kiosk.context import KioskContext
from kiosk.storage.retention import purge

# A writer process as the door service or the admin app would be: plain ORM sessions from
# session_factory, one transaction per row, some sessions reading before they write.
WRITER = r"""
import sys, time
from pathlib import Path
from sqlalchemy import select, func
from db.models import AccessEvent, AdminAction
from db.session import make_engine, session_factory
db, tag, n, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
sessions = session_factory(make_engine(f"sqlite:///{db}"))
while not go.exists():
    time.sleep(0.005)
for i in range(n):
    with sessions.begin() as s:
        s.scalar(select(func.count(AccessEvent.id)))  # a read first: the append must still be atomic
        s.add(AccessEvent(door=tag, person_name=f"{tag}-{i}", granted=i % 2 == 0, probability=0.5, reason="test"))
        if i % 10 == 0:
            s.add(AdminAction(actor=tag, action="note", subject=str(i)))
    time.sleep(0.003)  # a door writes at frame rate, not flat out: lets the two writers interleave
print("done", flush=True)
"""


def db_sessions(path: Path):  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    return engine, session_factory(engine)


def add_events(sessions, n: int, start: datetime | None = None, step: timedelta = timedelta(0)) -> None:  # type: ignore[no-untyped-def]
    for i in range(n):
        with sessions.begin() as s:
            when = None if start is None else start + i * step
            s.add(AccessEvent(time=when, door="front", person_name=f"P{i}", granted=bool(i % 2), probability=np.float32(0.25 + i / 1000), reason=f"reason-{i:04d}", details={"scores": (0.1, 0.2)}))


def broken(sessions, chain: str):  # type: ignore[no-untyped-def]
    return next(r for r in verify_all(sessions) if r.chain == chain).broken


def test_any_orm_write_is_chained_and_verifies(tmp_path: Path) -> None:
    engine, sessions = db_sessions(tmp_path / "k.db")
    add_events(sessions, 5)
    with sessions.begin() as s:
        s.add_all([AdminAction(actor="a", action="enroll", subject="X"), AdminAction(actor="a", action="retrain")])
    reports = verify_all(sessions)
    assert [(r.chain, r.rows, r.ok) for r in reports] == [("access_events", 5, True), ("admin_actions", 2, True)]
    with sessions() as s:
        rows = s.scalars(select(AccessEvent).order_by(AccessEvent.id)).all()
    assert rows[0].prev_hash is None
    assert all(b.prev_hash == a.row_hash for a, b in zip(rows, rows[1:]))
    assert isinstance(rows[0].probability, float) and rows[0].details == {"scores": [0.1, 0.2]}


def test_two_processes_appending_at_once_keep_one_chain(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    engine, sessions = db_sessions(db)
    go = tmp_path / "go"
    env = {"PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(db), tag, "60", str(go)], env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for tag in ("door", "admin")
    ]
    time.sleep(1.0)  # both imported and waiting
    go.touch()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with sessions() as s:
        doors = list(s.scalars(select(AccessEvent.door).order_by(AccessEvent.id)))
        prevs = list(s.scalars(select(AccessEvent.prev_hash)))
    assert len(doors) == 120
    assert len(set(prevs)) == 120  # no two rows hang off the same predecessor: the chain never forked
    switches = sum(a != b for a, b in zip(doors, doors[1:]))
    assert switches > 2, "the two writers did not interleave; the test proves nothing"
    assert all(r.ok for r in verify_all(sessions)), verify_all(sessions)


def test_edits_deletions_and_flipped_bytes_are_named(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    engine, sessions = db_sessions(db)
    add_events(sessions, 20)
    raw = sqlite3.connect(db)
    raw.execute("UPDATE access_events SET granted = 1 WHERE id = 7")
    raw.commit()
    link = broken(sessions, "access_events")
    assert (link.id, "content altered") == (7, link.problem[:15])
    raw.execute("UPDATE access_events SET granted = 0 WHERE id = 7")
    raw.commit()
    assert broken(sessions, "access_events") is None  # put back exactly: the chain holds again
    raw.execute("DELETE FROM access_events WHERE id = 12")
    raw.commit()
    link = broken(sessions, "access_events")
    assert link.id == 13 and "link broken" in link.problem

    # A byte flipped in the file itself, inside row 4's reason text.
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.close()
    engine.dispose()
    data = bytearray(db.read_bytes())
    at = data.index(b"reason-0003")
    data[at + 10] ^= 0x01  # "reason-0003" -> "reason-0002"
    db.write_bytes(bytes(data))
    engine, sessions = db_sessions(db)
    link = broken(sessions, "access_events")
    assert link.id == 4 and "content altered" in link.problem

    proc = run_kiosk(["audit", "verify"], tmp_path, KIOSK_DATABASE__URL=f"sqlite:///{db}")
    assert proc.returncode == 1
    assert "access_events: BROKEN at row 4 at " in proc.stdout and "content altered" in proc.stdout


def test_orm_refuses_to_change_or_delete_chained_rows(tmp_path: Path) -> None:
    engine, sessions = db_sessions(tmp_path / "k.db")
    add_events(sessions, 2)
    with pytest.raises(AuditTamperError, match="reason cannot change"):
        with sessions.begin() as s:
            s.get_one(AccessEvent, 1).reason = "nothing to see"
    with pytest.raises(AuditTamperError, match="cannot be deleted"):
        with sessions.begin() as s:
            s.delete(s.get_one(AccessEvent, 2))
    with sessions.begin() as s:  # the thumbnail pointer is outside the hash: it expires
        s.get_one(AccessEvent, 1).thumbnail_path = None
    assert all(r.ok for r in verify_all(sessions))


def test_purge_moves_the_anchor_and_the_chain_still_verifies(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ctx = KioskContext(Settings(home=home))
    now = datetime.now(timezone.utc)
    add_events(ctx.sessions, 10, start=now - timedelta(days=10, hours=-1), step=timedelta(days=1))
    proc = run_kiosk(["audit", "purge", "--older-than", "5"], home)
    assert proc.returncode == 0, proc.stderr
    assert "5 access_events" in proc.stdout  # days -10..-6 go, -5 (just inside the cutoff) onwards stay
    with ctx.sessions() as s:
        kept = list(s.scalars(select(AccessEvent.reason).order_by(AccessEvent.id)))
        purge_action = s.scalars(select(AdminAction).where(AdminAction.action == "purge")).one()
    assert kept == [f"reason-{i:04d}" for i in range(5, 10)]
    assert purge_action.details["rows"]["access_events"] == 5
    reports = verify_all(ctx.sessions)
    assert all(r.ok for r in reports) and reports[0].anchor_hash is not None

    add_events(ctx.sessions, 2)  # new rows link on from the head as before
    purge(ctx, 1, now=now + timedelta(days=30))  # everything goes; the next row links to the anchor
    add_events(ctx.sessions, 1)
    proc = run_kiosk(["audit", "verify"], home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "access_events: 1 rows verified from purge anchor" in proc.stdout

    raw = sqlite3.connect(home / "kiosk.db")
    raw.execute("INSERT INTO access_events (time, door, granted, reason, tailgating, details, prev_hash, row_hash) "
                "SELECT time, door, granted, 'forged', tailgating, details, prev_hash, row_hash FROM access_events")
    raw.execute("DELETE FROM access_events WHERE reason != 'forged'")
    raw.commit()
    link = broken(ctx.sessions, "access_events")
    assert link is not None and "content altered" in link.problem
