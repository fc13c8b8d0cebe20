"""The access log: every grant and refusal at the door, committed before the door opens.

`record` returns only after the event's transaction is committed (SQLite with
``synchronous=FULL``), and the door loop pulses the relay only after `record` returned: a
crash or power cut can lose an opening that never happened, never one that did. When the
event cannot be written (disk full, database locked past its timeout), the door stays shut.

Face thumbnails are optional (``privacy.thumbnails``): they are biometric data, stored by
``kiosk.storage.thumbnails`` (private, encrypted when a key is set, expiring with retention).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.models import AccessEvent, Person

Thumbnailer = Callable[[datetime, np.ndarray], str | None]  # stores a face, returns its path under home
# Runs inside the event's transaction, after the row has its id (the MQTT outbox): what it adds
# commits with the event or not at all.
InTransaction = Callable[[Session, AccessEvent], None]


@dataclass(frozen=True)
class EventDraft:
    time: datetime
    person: str | None
    granted: bool
    probability: float | None
    reason: str
    recogniser: str | None = None
    model_version: int | None = None
    track_id: int | None = None
    tailgating: bool = False
    thumbnail: np.ndarray | None = None  # an aligned face crop (BGR)
    details: dict[str, Any] = field(default_factory=dict)
    liveness: float | None = None  # the track's fused p(live) (issue 14)


class AccessLog:
    def __init__(self, sessions: sessionmaker[Session], door: str, home: Path, thumbnailer: Thumbnailer | None = None):
        self.sessions = sessions
        self.door = door
        self.home = home
        self.thumbnailer = thumbnailer
        self.in_transaction: list[InTransaction] = []

    def record(self, draft: EventDraft) -> int:
        """Write one event and commit it; returns its id. Raises if it could not be committed."""
        thumb = None
        if self.thumbnailer is not None and draft.thumbnail is not None:
            thumb = self.thumbnailer(draft.time, draft.thumbnail)
        try:
            with self.sessions.begin() as session:
                event = AccessEvent(
                    time=draft.time,
                    door=self.door,
                    person_id=None if draft.person is None else session.scalar(select(Person.id).where(Person.name == draft.person)),
                    person_name=draft.person,
                    granted=draft.granted,
                    probability=None if draft.probability is None else round(float(draft.probability), 6),
                    reason=draft.reason[:200],
                    recogniser=draft.recogniser,
                    model_version=draft.model_version,
                    track_id=draft.track_id,
                    tailgating=draft.tailgating,
                    thumbnail_path=thumb,
                    details=draft.details,
                    liveness=None if draft.liveness is None else round(float(draft.liveness), 6),
                )
                session.add(event)
                session.flush()
                for write in self.in_transaction:
                    write(session, event)
                return event.id
        except BaseException:
            if thumb:
                (self.home / thumb).unlink(missing_ok=True)
            raise
