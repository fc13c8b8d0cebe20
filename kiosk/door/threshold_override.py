"""The door's threshold as the admin set it, over the configured ``recognition.threshold``.

A single door: the admin app and the door service share only the data directory and the
database, so a threshold change made in the admin app is a small file there,
``<home>/threshold.json``, written atomically, which the door service reads through
``threshold_in_force``. A site (the database is PostgreSQL, issue 18): the change is the
``threshold_overrides`` row, which every door replicates into its own SQLite, so the row, where
a database holds one, wins over the file. Every change is also an AdminAction row. No
override means the configured value is in force; an unreadable file is an error rather than a
silent fallback, because the door must not guess its own threshold.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from db.models import AdminAction, ThresholdOverride, utcnow
from kiosk.config import Settings
from kiosk.errors import KioskError

OVERRIDE_FILE = "threshold.json"
ROW = 1  # threshold_overrides holds this one row


@dataclass(frozen=True)
class ThresholdInForce:
    value: float
    source: str  # "configuration", "set by <actor> at <time>" or "set at the site by <actor> at <time>"


# What an admin screen on a site database shows with no override row: each door applies its own
# recognition.threshold, and the admin machine's configured one says nothing about theirs.
NONE_AT_SITE = "none set at the site (each door's recognition.threshold)"


def threshold_in_force(settings: Settings, sessions: sessionmaker[Session]) -> ThresholdInForce:
    """The threshold the door applies now, and where it comes from."""
    with sessions() as session:
        row = session.get(ThresholdOverride, ROW)
        if row is not None:
            return ThresholdInForce(row.threshold, f"set at the site by {row.set_by} at {row.set_at.isoformat()[:16]}")
    path = settings.home / OVERRIDE_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return ThresholdInForce(settings.recognition.threshold, "configuration")
    except (OSError, ValueError) as exc:
        raise KioskError(f"threshold override {path} is unreadable: {exc}") from None
    try:
        value = _checked(float(data["threshold"]))
        return ThresholdInForce(value, f"set by {data['set_by']} at {data['time'][:16]}")
    except (KeyError, TypeError, ValueError, KioskError) as exc:
        raise KioskError(f"threshold override {path} is invalid: {exc}") from None


def set_threshold(settings: Settings, sessions: sessionmaker[Session], value: float, actor: str, when: datetime | None = None) -> None:
    """Set the override and log the change with the old value: the site's row, or this door's file."""
    value = _checked(value)
    if value < settings.recognition.hybrid_gate:
        raise KioskError(f"a threshold below recognition.hybrid_gate ({settings.recognition.hybrid_gate}) would let the hybrid refuse without asking CLIP; lower the gate first")
    old = threshold_in_force(settings, sessions).value
    stamp = when or utcnow()
    with sessions.begin() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.merge(ThresholdOverride(id=ROW, threshold=value, set_by=actor, set_at=stamp))
        elif settings.site_door:
            raise KioskError("this door's threshold is set at its site: run the admin app or `kiosk` with database.url pointing at the site database")
        else:
            _write_file(settings, value, actor, stamp)
        session.add(AdminAction(actor=actor, action="threshold", subject=None, details={"old": old, "new": value}))


def _write_file(settings: Settings, value: float, actor: str, stamp: datetime) -> None:
    """Atomically and private, so the door never reads half a file."""
    path = settings.home / OVERRIDE_FILE
    tmp = path.with_name(f".{OVERRIDE_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"threshold": value, "set_by": actor, "time": stamp.isoformat()}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _checked(value: float) -> float:
    if not 0.0 < value <= 1.0:
        raise KioskError(f"a threshold is a probability above 0 and at most 1, got {value}")
    return value
