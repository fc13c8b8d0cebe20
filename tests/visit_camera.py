"""A camera in front of a doorway that the test fills, one staged visit at a time.

Used by the tests that run the real door service in a thread (test_enrol_refresh, test_site):
each visit is a photo held for some frames, then an empty doorway; the returned event is set
when the loop asks for the frame after the visit, so every frame of it has been decided.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from kiosk.vision.camera import CameraSource, Frame


class VisitCamera(CameraSource):
    """With no visit staged it has no new frame (None), as a live camera between frames."""

    description = "staged visits"

    def __init__(self) -> None:
        self._frames: queue.SimpleQueue[tuple[np.ndarray, str, threading.Event | None]] = queue.SimpleQueue()
        self._seq = 0

    def visit(self, photo: Path, hold: int = 4, gap: int = 3, label: str | None = None) -> threading.Event:
        """Stage a visit (labelled with the photo's folder unless ``label``); the event is set once it is decided."""
        image = cv2.imread(str(photo))
        done = threading.Event()
        for _ in range(hold):
            self._frames.put((image, photo.parent.name if label is None else label, None))
        for _ in range(gap):
            self._frames.put((np.zeros_like(image), "", None))
        self._frames.put((np.zeros_like(image), "", done))
        return done

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def read(self) -> Frame | None:
        try:
            image, label, done = self._frames.get_nowait()
        except queue.Empty:
            return None
        if done is not None:
            done.set()  # every earlier frame has been processed: the loop reads one frame at a time
        self._seq += 1
        return Frame(image, self._seq, time.monotonic(), label)
