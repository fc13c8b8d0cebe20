"""Where frames come from: a live camera (V4L2, GStreamer, RTSP), a video file, or a folder of
images replayed as frames, all behind one `CameraSource`; `ResilientCamera` keeps the service
alive when a camera fails or disconnects.

Live sources are read by a grabber thread that keeps only the newest frame, so a slow loop
drops frames instead of queueing them (a queue would put the door seconds behind reality).
A replay with ``replay_fps`` > 0 behaves the same way; with 0 it yields every frame in turn,
which makes tests and the demo deterministic. A replay that reaches its end is *exhausted*:
the service stops by itself.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kiosk.clock import Clock, SystemClock
from kiosk.config import CameraConfig
from kiosk.errors import ImageError, KioskError
from kiosk.vision.images import IMAGE_SUFFIXES, decode_image, image_files

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mjpeg", ".h264", ".h265"})
GAP_LABEL = "(empty doorway)"


class CameraError(KioskError):
    """The camera cannot be opened or stopped delivering frames."""


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # BGR
    seq: int  # the source's frame number (gaps in it are dropped frames)
    captured: float  # time.monotonic() when the frame was taken (replays: when it was read)
    label: str = ""  # replays: the file shown, relative to the replayed folder


class CameraSource(ABC):
    """One camera. ``read`` returns None when no new frame is ready yet; it raises CameraError
    when the camera has failed (the caller closes and reopens it)."""

    description: str = ""
    dropped: int = 0  # frames the source skipped because nobody read them in time

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self) -> Frame | None: ...

    @abstractmethod
    def close(self) -> None: ...

    @property
    def exhausted(self) -> bool:
        """True when a replay has shown its last frame (a live camera never is)."""
        return False


class ReplaySource(CameraSource):
    """Image files replayed as frames: each held for ``hold`` frames, ``gap`` empty frames after each.

    Files are decoded when shown, so a folder that disappears mid-run fails like an unplugged
    camera, and the replay resumes at the same frame once it is back.
    """

    def __init__(
        self, files: list[Path], root: Path, hold: int = 1, gap: int = 0, fps: float = 0.0, repeat: int = 1,
        clock: Clock | None = None,
    ):
        if not files:
            raise CameraError(f"camera: no image files to replay in {root}")
        self.files, self.root = files, root
        self.hold, self.gap, self.fps, self.repeat = hold, gap, fps, repeat
        self.clock = clock or SystemClock()  # paces the replay (a test steps it instead of sleeping)
        self.description = f"replay of {len(files)} images from {root}" + (f" x{repeat}" if repeat > 1 else "")
        self._per_file = hold + gap
        self._total = len(files) * self._per_file * repeat
        self._next = 0
        self._start: float | None = None
        self._cached: tuple[int, np.ndarray] | None = None
        self.unreadable: set[int] = set()  # files that could not be decoded: skipped, logged once

    @classmethod
    def from_path(cls, path: Path, config: CameraConfig, repeat: int = 1, clock: Clock | None = None) -> ReplaySource:
        if path.is_dir():
            files = image_files(path)
            root = path
        else:
            files, root = [path], path.parent
        return cls(files, root, config.hold_frames, config.gap_frames, config.replay_fps, repeat, clock)

    def open(self) -> None:
        if not self.root.is_dir():
            raise CameraError(f"camera: replay folder is missing: {self.root}")

    def close(self) -> None:
        self._cached = None

    @property
    def exhausted(self) -> bool:
        return self._next >= self._total

    @property
    def total_frames(self) -> int:
        return self._total

    def read(self) -> Frame | None:
        while not self.exhausted:
            frame = self._read_next()
            if frame is not None:
                return frame
        return None

    def _read_next(self) -> Frame | None:
        """The next frame; None when its file cannot be shown (the file is skipped, said once)."""
        now = self.clock.monotonic()
        if self.fps > 0:
            if self._start is None:
                self._start = now - self._next / self.fps
            due = int((now - self._start) * self.fps)
            if due < self._next:  # like a live camera: wait for the next frame
                self.clock.sleep((self._next - due) / self.fps)
                due = self._next
            if due > self._next:
                skipped = min(due, self._total - 1) - self._next
                self.dropped += skipped
                self._next += skipped
        seq = self._next
        file_index, within = divmod(seq % (len(self.files) * self._per_file), self._per_file)
        image = self._image(file_index)
        if image is None:
            self._next = seq - within + self._per_file  # on to the next file's first frame
            return None
        self._next += 1
        if within >= self.hold:
            return Frame(np.zeros_like(image), seq, self.clock.monotonic(), GAP_LABEL)
        return Frame(image, seq, self.clock.monotonic(), self.files[file_index].relative_to(self.root).as_posix())

    def _image(self, index: int) -> np.ndarray | None:
        """The file's image; None for a file that is empty, corrupt or gone from a folder still there.

        A missing folder is a camera failure (retried, and the replay resumes at the same
        frame); one bad file is not: retrying it forever would stall the replay, so it is
        logged once and skipped, every time the replay comes round to it.
        """
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1]
        if index in self.unreadable:
            return None
        path = self.files[index]
        try:
            image = decode_image(path.read_bytes())
        except (OSError, ImageError) as exc:
            if not self.root.is_dir():
                raise CameraError(f"camera: cannot read replayed frame {path}: {exc}") from None
            self.unreadable.add(index)
            log.warning("camera: skipping replayed file %s: %s", path, exc)
            return None
        self._cached = (index, image)
        return image


class CaptureSource(CameraSource):
    """OpenCV VideoCapture: V4L2 device, GStreamer pipeline, RTSP/HTTP stream or video file.

    Live sources get a grabber thread holding only the newest frame; a video file is read in
    order (paced at ``fps`` when that is > 0) and ends the run at its end.
    """

    def __init__(self, target: int | str, backend: str, live: bool, fps: float = 0.0):
        self.target, self.backend, self.live, self.fps = target, backend, live, fps
        self.description = f"{backend} {target}"
        self._cap = None
        self._ended = False
        self._seq = 0
        self._latest: Frame | None = None
        self._taken = -1
        self._error: str | None = None
        self._lock = threading.Lock()
        self._new = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_read = 0.0

    def open(self) -> None:
        import cv2

        api = {"v4l2": cv2.CAP_V4L2, "gstreamer": cv2.CAP_GSTREAMER, "stream": cv2.CAP_FFMPEG}.get(self.backend, cv2.CAP_ANY)
        cap = cv2.VideoCapture(self.target, api)
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"camera: cannot open {self.description}")
        self._cap, self._error, self._stop = cap, None, threading.Event()
        if self.live:
            self._thread = threading.Thread(target=self._grab, name="camera-grabber", daemon=True)
            self._thread.start()

    def _grab(self) -> None:
        cap, stop = self._cap, self._stop
        while not stop.is_set():
            ok, image = cap.read()
            with self._new:
                if not ok or image is None:
                    self._error = f"camera: {self.description} stopped delivering frames"
                    self._new.notify_all()
                    return
                if self._latest is not None and self._latest.seq > self._taken:
                    self.dropped += 1
                self._seq += 1
                self._latest = Frame(image, self._seq, time.monotonic())
                self._new.notify_all()

    def read(self) -> Frame | None:
        if self._cap is None:
            raise CameraError(f"camera: {self.description} is not open")
        if not self.live:
            return self._read_file()
        with self._new:
            if self._latest is None or self._latest.seq <= self._taken:
                self._new.wait(timeout=0.1)
            if self._error:
                raise CameraError(self._error)
            if self._latest is None or self._latest.seq <= self._taken:
                return None
            self._taken = self._latest.seq
            return self._latest

    def _read_file(self) -> Frame | None:
        if self.fps > 0 and self._last_read:
            wait = self._last_read + 1.0 / self.fps - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            else:  # too slow for the file's pace: skip what a live camera would have dropped
                for _ in range(min(int(-wait * self.fps), 100)):
                    if not self._cap.grab():
                        break
                    self.dropped += 1
        self._last_read = time.monotonic()
        ok, image = self._cap.read()
        if not ok or image is None:
            self._ended = True
            return None
        self._seq += 1
        return Frame(image, self._seq, time.monotonic(), f"frame {self._seq}")

    @property
    def exhausted(self) -> bool:
        return not self.live and self._ended

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._latest, self._taken = None, -1


def camera_source(spec: str, config: CameraConfig) -> CameraSource:
    """The source a ``camera.source`` / ``--camera`` value names."""
    text = spec.strip()
    if not text:
        raise CameraError("camera: no source given")
    if text.isdigit():
        return CaptureSource(int(text), "v4l2", live=True)
    if "!" in text:
        return CaptureSource(text, "gstreamer", live=True)
    if "://" in text:
        return CaptureSource(text, "stream", live=True)
    path = Path(text).expanduser()
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        if not path.exists():
            raise CameraError(f"camera: no such image or folder: {path}")
        return ReplaySource.from_path(path, config)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        if not path.is_file():
            raise CameraError(f"camera: no such video file: {path}")
        return CaptureSource(str(path), "file", live=False, fps=config.replay_fps)
    if path.exists():
        raise CameraError(f"camera: {path} is neither an image folder, an image nor a video file")
    raise CameraError(f"camera: {text!r} is not a device index, pipeline, URL, folder or file")


class ResilientCamera:
    """A source that is reopened with exponential backoff whenever it fails; never raises.

    ``state`` is what the status file shows: ok, reconnecting, or exhausted (a replay is done).
    """

    def __init__(self, source: CameraSource, config: CameraConfig, monotonic: Callable[[], float] = time.monotonic):
        self.source = source
        self.config = config
        self._monotonic = monotonic
        self._open = False
        self._retry_at = 0.0
        self._backoff = config.reconnect_initial_seconds
        self._last_frame = monotonic()
        self.failures = 0
        self.state = "reconnecting"

    @property
    def description(self) -> str:
        return self.source.description

    @property
    def exhausted(self) -> bool:
        return self.source.exhausted

    @property
    def dropped(self) -> int:
        return self.source.dropped

    def read(self) -> Frame | None:
        """The next frame, or None (nothing yet, reconnecting, or exhausted: see ``exhausted``)."""
        if self.source.exhausted:
            self.state = "exhausted"
            return None
        now = self._monotonic()
        if not self._open:
            if now < self._retry_at:
                return None
            try:
                self.source.open()
            except CameraError as exc:
                self._failed(str(exc))
                return None
            except Exception as exc:  # a driver's own error must not end the service either
                self._failed(f"camera: {self.source.description}: {exc!r}")
                return None
            self._open, self._last_frame = True, now
            log.info("camera open: %s", self.source.description)
        try:
            frame = self.source.read()
        except CameraError as exc:
            self._failed(str(exc))
            return None
        except Exception as exc:
            self._failed(f"camera: {self.source.description}: {exc!r}")
            return None
        if frame is not None:
            if self.state != "ok" and self.failures:
                log.warning("camera back after %d failed attempt(s): %s", self.failures, self.source.description)
            self.state, self.failures, self._last_frame = "ok", 0, now
            self._backoff = self.config.reconnect_initial_seconds
        elif self.source.exhausted:
            self.state = "exhausted"
        elif now - self._last_frame > self.config.stall_seconds:
            self._failed(f"camera: no frame from {self.source.description} for {now - self._last_frame:.1f} s")
        return frame

    def _failed(self, message: str) -> None:
        self.failures += 1
        self.state = "reconnecting"
        self._close_quietly()
        self._retry_at = self._monotonic() + self._backoff
        log.warning("%s; retrying in %.1f s (attempt %d)", message, self._backoff, self.failures)
        self._backoff = min(self._backoff * 2, self.config.reconnect_max_seconds)

    def seconds_until_retry(self) -> float:
        return max(0.0, self._retry_at - self._monotonic()) if not self._open else 0.0

    def _close_quietly(self) -> None:
        if self._open:
            try:
                self.source.close()
            except Exception:  # closing a dead device may fail too; it is being abandoned
                log.debug("closing the failed camera raised", exc_info=True)
        self._open = False

    def close(self) -> None:
        self._close_quietly()
