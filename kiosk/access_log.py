"""The access log: every grant and refusal at the door, committed before the door opens.

`record` returns only after the event's transaction is committed (SQLite with
``synchronous=FULL``), and the door loop pulses the relay only after `record` returned: a
crash or power cut can lose an opening that never happened, never one that did. When the
event cannot be written (disk full, database locked past its timeout), the door stays shut.

Face thumbnails are optional (``policy.thumbnails``): they are biometric data, written
privately (0600) under ``<home>/thumbnails/``.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.models import AccessEvent, Person

THUMBNAIL_SIZE = 112


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


class AccessLog:
    def __init__(self, sessions: sessionmaker[Session], door: str, thumbnails_dir: Path | None = None):
        self.sessions = sessions
        self.door = door
        self.thumbnails_dir = thumbnails_dir

    def record(self, draft: EventDraft) -> int:
        """Write one event and commit it; returns its id. Raises if it could not be committed."""
        folder = self.thumbnails_dir
        thumb = _write_thumbnail(folder, draft.thumbnail) if folder is not None and draft.thumbnail is not None else None
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
                )
                session.add(event)
                session.flush()
                return event.id
        except BaseException:
            if thumb and folder is not None:
                (folder / thumb).unlink(missing_ok=True)
            raise


def _write_thumbnail(folder: Path, crop: np.ndarray) -> str:
    """A small private JPEG of the face; returns its path relative to the thumbnails folder."""
    small = cv2.resize(crop, (THUMBNAIL_SIZE, THUMBNAIL_SIZE), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise OSError("could not encode the event thumbnail")
    day = datetime.now().strftime("%Y-%m-%d")
    (folder / day).mkdir(parents=True, exist_ok=True, mode=0o700)
    name = f"{day}/{uuid.uuid4().hex}.jpg"
    fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(buf.tobytes())
    return name
