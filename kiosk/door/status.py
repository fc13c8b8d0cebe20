"""What the door service tells the screens: each decision as it happens, and its status.

Decisions go to in-process listeners (the door display runs the loop in its own process).

The service rewrites ``<home>/status.json`` (atomically) about once a second; the admin app,
a separate process, reads it. A missing or stale file means the service is not running; its
last write on a clean stop says ``stopped``, so the screens can tell a stop from a hang.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

STATUS_FILE = "status.json"
FRESH_SECONDS = 5.0  # the service writes its status about once a second
PANEL_GRANTED, PANEL_REFUSED = "granted by the panel", "refused by the panel"  # an access panel's answer (issue 16)


@dataclass(frozen=True)
class DoorDecision:
    """One decision at the door, as listeners (the door display) receive it."""

    time: datetime
    person: str | None  # None for an unknown face
    probability: float
    granted: bool
    reason: str
    track_id: int | None = None
    tailgating: bool = False


@dataclass(frozen=True)
class DoorStatus:
    door: str
    door_state: str  # closed | open | held-open | forced
    camera: str  # ok | reconnecting | failed | exhausted
    fps: float
    recogniser: str
    model_version: int | None
    threshold: float
    updated: float  # time.time() when written
    pid: int
    lockdown: bool = False
    mqtt: dict[str, object] | None = None  # connected, outbox depth (when MQTT is on)
    stopped: bool = False  # the service's last write when it stopped cleanly
    panel: str = ""  # access-panel outputs' link state ("osdp: secure channel up"); empty without a panel

    def live(self, now: float | None = None, fresh_seconds: float = FRESH_SECONDS) -> bool:
        """Written recently by a service that has not stopped: one that can hand over frames now."""
        return not self.stopped and self.age(now) <= fresh_seconds

    def age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.updated


def write_status(home: Path, status: DoorStatus) -> None:
    path = home / STATUS_FILE
    tmp = path.with_name(f".{STATUS_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(status)))
    os.replace(tmp, path)


def read_status(home: Path) -> DoorStatus | None:
    """The last status the service wrote, or None if it never wrote one (or it is unreadable)."""
    try:
        return DoorStatus(**json.loads((home / STATUS_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None
