"""The door's threshold as the admin set it: ``<home>/threshold.json`` over the configured value.

The admin app and the door service share only the data directory and the database, so a
threshold change made in the admin app is a small file there, written atomically, which the
door service reads through ``threshold_in_force``; every change is also an AdminAction row.
A missing file means the configured ``recognition.threshold`` is in force; an unreadable one is
an error rather than a silent fallback, because the door must not guess its own threshold.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from db.models import AdminAction, utcnow
from kiosk.config import Settings
from kiosk.errors import KioskError

OVERRIDE_FILE = "threshold.json"


@dataclass(frozen=True)
class ThresholdInForce:
    value: float
    source: str  # "configuration" or "set by <actor> at <time>"


def threshold_in_force(settings: Settings) -> ThresholdInForce:
    """The threshold the door applies now, and where it comes from."""
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
    """Write the override (atomically, private) and log the change with the old value."""
    value = _checked(value)
    if value < settings.recognition.hybrid_gate:
        raise KioskError(f"a threshold below recognition.hybrid_gate ({settings.recognition.hybrid_gate}) would let the hybrid refuse without asking CLIP; lower the gate first")
    old = threshold_in_force(settings).value
    stamp = (when or utcnow()).isoformat()
    path = settings.home / OVERRIDE_FILE
    tmp = path.with_name(f".{OVERRIDE_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"threshold": value, "set_by": actor, "time": stamp}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    with sessions.begin() as session:
        session.add(AdminAction(actor=actor, action="threshold", subject=None, details={"old": old, "new": value}))


def _checked(value: float) -> float:
    if not 0.0 < value <= 1.0:
        raise KioskError(f"a threshold is a probability above 0 and at most 1, got {value}")
    return value
