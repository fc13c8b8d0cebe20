"""Camera frames handed from the door service to the admin app, which cannot open the camera.

Only one process can hold the camera, so the admin app asks the running service for frames:
it creates ``<home>/handover/<id>/request.json``; the service's loop offers each frame to
``FrameHandover``, which writes the next ``count`` frames there (PNG, private) and then a
``done`` marker; the requester reads and deletes the folder. Files, not sockets, because both
processes already share the data directory and nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

import cv2
import numpy as np

from kiosk.errors import KioskError
from kiosk.vision.images import decode_image

HANDOVER_DIR = "handover"


def request_frames(home: Path, count: int, timeout: float = 10.0, poll: float = 0.05) -> list[np.ndarray]:
    """Ask the running door service for the next ``count`` frames and wait for them."""
    folder = home / HANDOVER_DIR / uuid.uuid4().hex
    folder.mkdir(parents=True, mode=0o700)
    try:
        tmp = folder / "request.json.tmp"
        tmp.write_text(json.dumps({"count": count, "created": time.time()}))
        os.replace(tmp, folder / "request.json")
        deadline = time.monotonic() + timeout
        while not (folder / "done").exists():
            if time.monotonic() > deadline:
                raise KioskError("the door service handed over no frames in time: is `kiosk run` running?")
            time.sleep(poll)
        return [decode_image(p.read_bytes()) for p in sorted(folder.glob("frame-*.png"))]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class FrameHandover:
    """The service side: cheap to call on every frame (it looks for requests a few times a second)."""

    def __init__(self, home: Path, check_every: float = 0.2):
        self.root = home / HANDOVER_DIR
        self.check_every = check_every
        self._next_check = 0.0
        self._pending: list[tuple[Path, int, int]] = []  # (folder, wanted, written)

    def offer(self, frame: np.ndarray) -> None:
        now = time.monotonic()
        if not self._pending and now < self._next_check:
            return
        if now >= self._next_check:
            self._next_check = now + self.check_every
            self._scan()
        still: list[tuple[Path, int, int]] = []
        for folder, wanted, written in self._pending:
            if not folder.exists():  # requester gave up
                continue
            ok, buf = cv2.imencode(".png", frame)
            if ok:
                fd = os.open(folder / f"frame-{written:04d}.png", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(buf.tobytes())
                written += 1
            if written >= wanted:
                (folder / "done").touch()
            else:
                still.append((folder, wanted, written))
        self._pending = still

    def _scan(self) -> None:
        if not self.root.is_dir():
            return
        known = {f for f, _, _ in self._pending}
        for request in self.root.glob("*/request.json"):
            folder = request.parent
            if folder in known or (folder / "done").exists():
                continue
            try:
                wanted = int(json.loads(request.read_text())["count"])
            except (OSError, ValueError, KeyError):
                continue
            self._pending.append((folder, max(wanted, 1), 0))
