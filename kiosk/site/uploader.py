"""Events flow back: each door's access events, committed locally first, sent to the site in order.

`upload_pending` reads the door's events after its upload mark (``site_upload_state``) in id
order, inserts them at the site in one transaction with the door's own id as
``door_event_id`` (unique per door, so a batch sent twice, after a crash between the site's
commit and the local mark, is stored once), then moves the mark. The rows keep the door's
``prev_hash``/``row_hash``: each door's hash chain arrives intact and `kiosk audit verify`
checks it at the site. Thumbnails stay at the door (biometric data, expiring there).

Fifty doors share one server, so a round is kept short: one local read, one statement at the
site (compiled once; the person is looked up inside it) and no connection check before it
(`retry_if_dropped` sends the batch again on a fresh connection after a server restart).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, Row, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, sessionmaker

from db.models import AccessEvent, Person, SiteUploadState, utcnow
from kiosk.site.connection import retry_if_dropped

BATCH = 500
SENT_COLUMNS = (
    "time", "door", "person_id", "person_name", "granted", "probability", "reason", "recogniser",
    "model_version", "track_id", "tailgating", "liveness", "details", "prev_hash", "row_hash",
)
_EVENTS = AccessEvent.__table__.c
_MARK = select(SiteUploadState.sent_through).where(SiteUploadState.id == 1).scalar_subquery()
_PENDING = select(_EVENTS.id, *(_EVENTS[c] for c in SENT_COLUMNS)).where(_EVENTS.id > _MARK).order_by(_EVENTS.id)
# A person erased at the site since the event keeps their name on it but no link, as on the door.
_INSERT = pg_insert(AccessEvent).values(
    {c: bindparam(c, type_=_EVENTS[c].type) for c in SENT_COLUMNS if c != "person_id"}
    | {"person_id": select(Person.id).where(Person.id == bindparam("door_person_id")).scalar_subquery(),
       "door_event_id": bindparam("door_event_id")}
).on_conflict_do_nothing(constraint="uq_access_events_door_event")


def outbox_depth(sessions: sessionmaker[Session]) -> int:
    """Events stored at this door and not yet at the site."""
    with sessions() as session:
        return session.scalar(select(func.count(_EVENTS.id)).where(_EVENTS.id > _MARK)) or 0


def upload_pending(site: Engine, sessions: sessionmaker[Session], batch: int = BATCH, timings: list[float] | None = None) -> int:
    """Send every unsent event, oldest first; returns how many were sent. Raises if the site is down.

    ``timings`` (the load benchmark) gets the duration of each site transaction, commit included.
    """
    total = 0
    while True:
        with sessions() as session:
            events = session.execute(_PENDING.limit(batch)).all()
        if not events:
            return total
        started = time.perf_counter()
        _send(site, [_row(e) for e in events])
        if timings is not None:
            timings.append(time.perf_counter() - started)
        with sessions.begin() as session:
            session.execute(update(SiteUploadState).where(SiteUploadState.id == 1).values(sent_through=events[-1].id, sent_at=utcnow()))
        total += len(events)
        if len(events) < batch:
            return total


def _send(site: Engine, rows: list[dict[str, Any]]) -> None:
    def insert() -> None:
        with site.begin() as conn:
            conn.execute(_INSERT, rows)

    retry_if_dropped(insert)  # a batch inserted twice is stored once


def _row(event: Row[Any]) -> dict[str, Any]:
    row = {c: event._mapping[c] for c in SENT_COLUMNS if c != "person_id"}
    row["door_person_id"] = event.person_id
    row["door_event_id"] = event.id
    return row
