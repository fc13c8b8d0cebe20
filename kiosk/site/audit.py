"""`kiosk audit verify` at a site: every door's hash chain, as the door wrote it.

Each door chains its events in its own SQLite; the uploader sends the rows with their hashes
and the door's id for them (``door_event_id``). Here each door's rows are walked in that order:
each must link to the row before and hash to its content. The first row's link is where the
site's copy starts (the door may have purged older events before it joined).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.audit_chain import BrokenLink, ChainReport, content_hash, row_content, verify_chain
from db.models import AccessEvent, AdminAction, Door

CHAIN = AccessEvent.__tablename__


def is_site(sessions: sessionmaker[Session]) -> bool:
    with sessions() as session:
        return session.get_bind().dialect.name == "postgresql" and session.scalar(select(Door.id).limit(1)) is not None


def verify_door(session: Session, door: str) -> ChainReport:
    name = f"{CHAIN}[{door}]"
    rows = 0
    anchor = expected = head = None
    query = select(AccessEvent).where(AccessEvent.door == door, AccessEvent.door_event_id.is_not(None)).order_by(AccessEvent.door_event_id)
    for row in session.scalars(query.execution_options(yield_per=1000)):
        rows += 1
        if rows == 1:
            anchor = expected = head = row.prev_hash
        if row.prev_hash != expected:
            return ChainReport(name, rows, anchor, head, BrokenLink(row.id, row.time, (
                f"link broken at door event {row.door_event_id}: an event before it is missing, or was inserted or reordered")))
        if content_hash(CHAIN, row.prev_hash, row_content(row)) != row.row_hash:
            return ChainReport(name, rows, anchor, head, BrokenLink(row.id, row.time, f"content altered (door event {row.door_event_id})"))
        expected = head = row.row_hash
    return ChainReport(name, rows, anchor, head, None)


def verify_site(sessions: sessionmaker[Session]) -> list[ChainReport]:
    """The admin actions' chain, then one chain per door that has sent events."""
    with sessions() as session:
        doors = sorted(set(session.scalars(select(AccessEvent.door).where(AccessEvent.door_event_id.is_not(None)).distinct())))
        return [verify_chain(session, AdminAction.__tablename__), *(verify_door(session, d) for d in doors)]
