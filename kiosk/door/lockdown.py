"""Lockdown: while it is on, the door grants nobody (events say `lockdown`), across restarts.

Set by a signed MQTT command (kiosk/integrations/signed_commands.py) and kept in
``<home>/lockdown.json`` so a restarted kiosk stays locked down. A file that cannot be read
means lockdown (fail-secure): the door never opens because a flag was lost. The exit button
still releases the lock: egress is a safety matter, not an access decision.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import datetime
from pathlib import Path

log = logging.getLogger(__name__)

LOCKDOWN_FILE = "lockdown.json"


class Lockdown:
    def __init__(self, home: Path):
        self.path = home / LOCKDOWN_FILE
        self._lock = threading.Lock()
        self._active = self._read()

    def _read(self) -> bool:
        try:
            return bool(json.loads(self.path.read_text())["active"])
        except FileNotFoundError:
            return False
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("lockdown file %s unreadable (%s): lockdown stays ON until set again", self.path, exc)
            return True

    @property
    def active(self) -> bool:
        return self._active

    def set(self, active: bool, actor: str, when: datetime) -> None:
        """Persist first, then take effect: a crash in between leaves the file as the truth."""
        with self._lock:
            tmp = self.path.with_name(f".{LOCKDOWN_FILE}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump({"active": active, "by": actor, "time": when.isoformat()}, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            self._active = active
        log.warning("lockdown %s by %s", "ON" if active else "off", actor)
