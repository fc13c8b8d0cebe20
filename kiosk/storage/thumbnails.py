"""Face thumbnails kept with access events: only when `privacy.thumbnails` is on, and never for long.

A thumbnail goes through crop_store (private, encrypted when a key is set) into
``<home>/thumbnails/<UTC date>/``; the event row keeps the relative path. Expiry clears that
path (it is outside the audit hash for this reason) and deletes the file; whole day folders
past the retention are removed too, so a file whose event was never committed (a crash
between the two) does not outlive the retention either.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from db.models import AccessEvent
from kiosk.config import Settings
from kiosk.errors import ImageError
from kiosk.storage.crop_store import CropStore

THUMBNAILS = "thumbnails"


def save_thumbnail(settings: Settings, crops: CropStore, when: datetime, face: np.ndarray) -> str | None:
    """Store a face thumbnail for an event at ``when``; its path for AccessEvent.thumbnail_path, or None when off."""
    if not settings.privacy.thumbnails:
        return None
    relative = Path(THUMBNAILS) / when.astimezone(timezone.utc).strftime("%Y-%m-%d") / f"{uuid.uuid4().hex}.png"
    crops.write(settings.home / relative, face)
    return relative.as_posix()


def thumbnail_jpeg(crops: CropStore, home: Path, relative: str) -> bytes | None:
    """An event's stored thumbnail as plain JPEG bytes (decrypted), for MQTT; None once expired or erased.

    JPEG because that is what Home Assistant's MQTT image and camera entities take without
    further configuration; the stored file stays as it is (PNG, encrypted when a key is set).
    """
    try:
        face = crops.read(home / relative)
    except FileNotFoundError:
        return None
    ok, buf = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ImageError(f"could not encode the thumbnail {relative} as JPEG")
    return buf.tobytes()


def delete_thumbnails(home: Path, paths: Iterable[str]) -> int:
    count = 0
    for rel in paths:
        path = home / rel
        if path.is_file():
            path.unlink()
            count += 1
    return count


def expire_thumbnails(sessions: sessionmaker[Session], home: Path, days: int, now: datetime | None = None) -> int:
    """Delete thumbnails of events older than ``days``; returns how many files were removed."""
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=days)
    with sessions.begin() as session:
        paths = list(session.scalars(
            select(AccessEvent.thumbnail_path).where(AccessEvent.time < cutoff, AccessEvent.thumbnail_path.is_not(None))
        ))
        session.execute(
            update(AccessEvent)
            .where(AccessEvent.time < cutoff, AccessEvent.thumbnail_path.is_not(None))
            .values(thumbnail_path=None)
        )
    removed = delete_thumbnails(home, paths)
    root = home / THUMBNAILS
    if root.is_dir():
        for day in root.iterdir():
            try:
                stamp = datetime.strptime(day.name, "%Y-%m-%d").replace(tzinfo=timezone.utc)
            except ValueError:
                continue
            if stamp + timedelta(days=1) <= cutoff:
                removed += sum(1 for p in day.rglob("*") if p.is_file())
                shutil.rmtree(day, ignore_errors=True)
    return removed


def forget_thumbnails(session: Session, home: Path, person_id: int) -> int:
    """Remove every event thumbnail of one person (their erasure); the caller commits."""
    paths = list(session.scalars(
        select(AccessEvent.thumbnail_path).where(AccessEvent.person_id == person_id, AccessEvent.thumbnail_path.is_not(None))
    ))
    session.execute(update(AccessEvent).where(AccessEvent.person_id == person_id).values(thumbnail_path=None))
    return delete_thumbnails(home, paths)
