"""Events flow back: each door's access events, committed locally first, sent to the site in order.

`upload_pending` reads the door's events after its upload mark (``site_upload_state``) in id
order, inserts them at the site in one transaction with the door's own id as
``door_event_id`` (unique per door, so a batch sent twice, after a crash between the site's
commit and the local mark, is stored once), then moves the mark. The rows keep the door's
``prev_hash``/``row_hash``: each door's hash chain arrives intact and `kiosk audit verify`
checks it at the site. Thumbnails stay at the door (biometric data, expiring there).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, sessionmaker

from db.models import AccessEvent, Person, SiteUploadState, utcnow

BATCH = 500
SENT_COLUMNS = (
    "time", "door", "person_id", "person_name", "granted", "probability", "reason", "recogniser",
    "model_version", "track_id", "tailgating", "liveness", "details", "prev_hash", "row_hash",
)


def sent_through(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(SiteUploadState.sent_through).where(SiteUploadState.id == 1)) or 0


def outbox_depth(sessions: sessionmaker[Session]) -> int:
    """Events stored at this door and not yet at the site."""
    mark = sent_through(sessions)
    with sessions() as session:
        return session.scalar(select(func.count(AccessEvent.id)).where(AccessEvent.id > mark)) or 0


def upload_pending(site: Engine, sessions: sessionmaker[Session], batch: int = BATCH, timings: list[float] | None = None) -> int:
    """Send every unsent event, oldest first; returns how many were sent. Raises if the site is down.

    ``timings`` (the load benchmark) gets the duration of each site transaction, commit included.
    """
    total = 0
    while True:
        mark = sent_through(sessions)
        with sessions() as session:
            events = list(session.scalars(select(AccessEvent).where(AccessEvent.id > mark).order_by(AccessEvent.id).limit(batch)))
        if not events:
            return total
        started = time.perf_counter()
        with site.begin() as conn:
            wanted = {e.person_id for e in events if e.person_id is not None}
            known = set(conn.scalars(select(Person.id).where(Person.id.in_(wanted)))) if wanted else set()
            rows = [_row(e, known) for e in events]
            conn.execute(pg_insert(AccessEvent).values(rows).on_conflict_do_nothing(constraint="uq_access_events_door_event"))
        if timings is not None:
            timings.append(time.perf_counter() - started)
        with sessions.begin() as session:
            session.execute(update(SiteUploadState).where(SiteUploadState.id == 1).values(sent_through=events[-1].id, sent_at=utcnow()))
        total += len(events)
        if len(events) < batch:
            return total


def _row(event: AccessEvent, known_people: set[int]) -> dict[str, Any]:
    row = {c: getattr(event, c) for c in SENT_COLUMNS}
    if row["person_id"] not in known_people:
        row["person_id"] = None  # erased at the site since: the name stays, as on the door
    row["door_event_id"] = event.id
    return row
