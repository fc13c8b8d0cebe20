"""Where every retrain, whoever started it, says how far it is: ``<home>/retrain.json``.

The admin app's own retrain, `kiosk retrain` from a shell and the systemd timer's catch-up each
run in a background process (kiosk/training/process.py) that rewrites this one file, atomically,
at its start, at every progress step and at its end. So the admin app's Retrain screen shows a
retrain it did not start, and a second retrain is refused while one runs. Cancelling one is the
same request as for the app's own child and `systemctl stop kiosk-retrain`: SIGTERM to the pid
written here, which the retrain honours at its next step (the models in force stay). A file
still marked running whose process is gone was left by a retrain killed outright: stale.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from kiosk.processes import owner, owner_gone
from kiosk.training.progress import RetrainProgress

RETRAIN_FILE = "retrain.json"

Ending = Literal["done", "cancelled", "failed"]


@dataclass(frozen=True)
class RetrainStatus:
    owner: dict[str, Any]  # kiosk.processes.owner() of the retrain process
    started_by: str  # "the admin app (admin)", "kiosk retrain", "kiosk retrain --if-due" (the timer)
    started_at: float  # time.time()
    updated: float
    progress: dict[str, Any] | None = None  # the last RetrainProgress, as a dict
    fraction: float | None = None  # of the current stage (features, epochs), 0..1; None where it has no count
    ended: Ending | None = None
    outcome: str = ""  # how it ended: the new versions, or why not

    @property
    def pid(self) -> int:
        return int(self.owner["pid"])

    def last_progress(self) -> RetrainProgress | None:
        return RetrainProgress(**self.progress) if self.progress else None

    def running(self) -> bool:
        """Not ended, and its process still runs: one that can be cancelled now."""
        return self.ended is None and not owner_gone(self.owner)

    def stale(self) -> bool:
        """Marked running by a process that is gone (killed outright): nothing runs, nothing changed."""
        return self.ended is None and owner_gone(self.owner)

    def same_run(self, other: RetrainStatus) -> bool:
        return self.owner == other.owner and self.started_at == other.started_at


def read_retrain_status(home: Path) -> RetrainStatus | None:
    """The last retrain's status, or None if none ever wrote one (or the file is unreadable)."""
    try:
        return RetrainStatus(**json.loads((home / RETRAIN_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def cancel_retrain(status: RetrainStatus) -> bool:
    """Ask a running retrain to stop at its next step (its SIGTERM); False if it no longer runs."""
    if not status.running():
        return False
    try:
        os.kill(status.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


class StatusWriter:
    """This process's retrain status: written at the start, at each progress step, and at the end.

    Only a process whose SIGTERM already cancels its retrain may write one, since the pid
    written here is what the admin app signals.
    """

    def __init__(self, home: Path, started_by: str):
        self.path = home / RETRAIN_FILE
        now = time.time()
        self.status = RetrainStatus(owner=owner(), started_by=started_by, started_at=now, updated=now)
        self._write()

    def __call__(self, progress: RetrainProgress) -> None:
        count = progress.epoch if progress.stage == "epoch" and progress.epoch is not None else progress.done
        fraction = min(count / progress.total, 1.0) if progress.total else None
        self.status = replace(self.status, updated=time.time(), progress=asdict(progress), fraction=fraction)
        self._write()

    def end(self, ended: Ending, outcome: str) -> None:
        self.status = replace(self.status, updated=time.time(), ended=ended, outcome=outcome)
        self._write()

    def _write(self) -> None:
        tmp = self.path.with_name(f".{RETRAIN_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(self.status)))
        os.replace(tmp, self.path)
