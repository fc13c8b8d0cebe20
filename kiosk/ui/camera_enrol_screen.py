"""Enrol the person standing at the kiosk, from frames the running door service hands over.

The admin app cannot open the camera (the door service holds it), so it asks the service for
frames (frame_handover). Every frame is checked at once and the verdict shown (no face, two
faces, too small, blurred, turned away, or good, with the aligned crop as a thumbnail), so
the person can step closer or face the camera. Good frames are enrolled like photos, then the
temporary copies are deleted.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Footer, Input, Label, Static
from textual.worker import get_current_worker

from kiosk.admin.enrolment import DUPLICATE, FAILED, STORED, EnrollSummary
from kiosk.door.status import read_status
from kiosk.errors import KioskError
from kiosk.ui.enrol_dialog import EnrolDialog, EnrolFinished
from kiosk.ui.thumbnails import half_blocks
from kiosk.vision.capture_quality import face_quality
from kiosk.vision.face_alignment import ARCFACE_SIZE, align
from kiosk.vision.face_detection import primary_face

if TYPE_CHECKING:
    pass

GOOD_FRAMES = 5  # samples to collect from one capture
MAX_FRAMES = 40  # give up after this many frames (the person walked away)
BATCH = 2  # frames asked of the service at a time: small, so feedback stays live
FRAME_TIMEOUT = 10.0
PREVIEW_CELLS = 16


@dataclass
class FrameChecked(Message):
    number: int
    verdict: str
    good: bool
    good_so_far: int
    preview: Text | None


class CameraEnrolScreen(EnrolDialog):
    DEFAULT_CSS = """
    CameraEnrolScreen { align: center middle; }
    #camera-box { width: 100%; height: 100%; border: round $primary; background: $surface; padding: 0 1; }
    #camera-box Input { margin-bottom: 1; }
    #camera-body { height: 1fr; }
    #camera-frames { width: 1fr; }
    #camera-preview { width: 18; padding: 0 1; }
    #camera-summary { height: 2; }
    """
    BINDINGS = [Binding("escape", "close", "Stop / close")]
    SUMMARY_ID = "camera-summary"

    def compose(self) -> ComposeResult:
        with Vertical(id="camera-box"):
            yield Label("Name of the person at the kiosk")
            yield Input(placeholder="full name", id="camera-name", compact=True)
            yield Static(f"Enter starts: {GOOD_FRAMES} good frames are kept, at most {MAX_FRAMES} tried.", id="camera-summary")
            with Horizontal(id="camera-body"):
                table: DataTable[str] = DataTable(id="camera-frames", cursor_type="row")
                for label, width in (("frame", 6), ("verdict", 60)):  # fixed: see enrol_files_screen
                    table.add_column(label, width=width)
                yield table
                yield Static("", id="camera-preview")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#camera-box").border_title = "enrol at the kiosk camera"
        self.query_one("#camera-name").focus()

    @on(Input.Submitted, "#camera-name")
    def _start(self) -> None:
        if self.running:
            return
        name = self.typed_name("camera-name")
        if name is None:
            return
        status = read_status(self.app.kiosk.settings.home)
        if status is None or not status.live(self.app.clock().timestamp()):
            self.show_summary("[red]no door service is running: start it (`kiosk run` or its systemd unit); it holds the camera[/]")
            return
        self.running = True
        table = self.query_one("#camera-frames", DataTable)
        table.clear()
        table.focus()
        self.show_summary(f"asking the door service for frames of {name}: look at the camera")
        self.capture(name)

    @work(thread=True, exclusive=True, group="camera-enrol")
    def capture(self, name: str) -> None:
        worker = get_current_worker()
        kiosk = self.app.kiosk
        captures = kiosk.settings.home / "captures"
        captures.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder = Path(tempfile.mkdtemp(prefix="camera-", dir=captures))
        try:
            good: list[Path] = []
            seen: set[str] = set()  # a frame identical to an earlier one: a frozen or replayed camera
            number = 0
            while len(good) < GOOD_FRAMES and number < MAX_FRAMES and not worker.is_cancelled:
                for frame in self.app.frame_source(kiosk.settings.home, BATCH, FRAME_TIMEOUT):
                    if len(good) >= GOOD_FRAMES:
                        break
                    number += 1
                    digest = hashlib.sha256(frame.tobytes()).hexdigest()
                    if digest in seen:
                        self.post_message(FrameChecked(number, "same as an earlier frame (camera frozen?)", False, len(good), None))
                        continue
                    seen.add(digest)
                    verdict, ok, preview = self._check(frame)
                    if ok:
                        path = folder / f"camera-{number:03d}.png"
                        cv2.imwrite(str(path), frame)
                        good.append(path)
                    self.post_message(FrameChecked(number, verdict, ok, len(good), preview))
            if worker.is_cancelled:
                return
            if not good:
                self.post_message(EnrolFinished(None, f"no usable frame in {number}: nothing enrolled"))
                return
            self.enrol_photos(name, good)
        except KioskError as exc:
            self.post_message(EnrolFinished(None, str(exc)))
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _check(self, frame: np.ndarray) -> tuple[str, bool, Text | None]:
        detection = self.app.kiosk.detector.detect(frame)
        if len(detection.faces) > 1:
            return f"{len(detection.faces)} faces: one person at a time", False, None
        face = primary_face(detection.faces, frame.shape)
        if face is None:
            return detection.reason, False, None
        quality = face_quality(frame, face)
        preview = half_blocks(align(frame, face.keypoints, ARCFACE_SIZE), PREVIEW_CELLS)
        if quality.problems:
            return "; ".join(quality.problems), False, preview
        return f"good: {quality.summary()}", True, preview

    def on_frame_checked(self, message: FrameChecked) -> None:
        verdict = f"[green]{message.verdict}[/]" if message.good else f"[yellow]{message.verdict}[/]"
        table = self.query_one("#camera-frames", DataTable)
        table.add_row(str(message.number), verdict)
        table.move_cursor(row=table.row_count - 1)
        if message.preview is not None:
            self.query_one("#camera-preview", Static).update(message.preview)
        self.show_summary(f"{message.good_so_far}/{GOOD_FRAMES} good frames after {message.number} tried")

    def outcome(self, s: EnrollSummary) -> str:
        failed = "; ".join(r.reason for r in s.results if r.status == FAILED)
        return (
            f"{s.person}: {s.count(STORED)} samples stored from the camera, {s.count(DUPLICATE)} duplicate, {s.count(FAILED)} refused"
            + (f" ({failed})" if failed else "")
            + "."
        )

    def action_close(self) -> None:
        if self.running:
            self.workers.cancel_group(self, "camera-enrol")
            self.running = False
            self.show_summary("capture stopped: nothing enrolled")
            return
        self.dismiss(None)
