"""One camera frame through the door's pipeline: detect, align, recognise, track, decide.

Each stage is timed (`StageTimes`), because the door's promise is a time budget: the
benchmark reads the same timings the running service keeps. Storing the events and pulsing
the relay are the service's job (kiosk/door/service.py); it times "decode" (the camera read)
and "store" into the same `StageTimes`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from kiosk.door.decision_policy import DecisionPolicy, Observation, Verdict
from kiosk.recognition.base import FaceCrops, Prediction, Recogniser
from kiosk.vision.face_alignment import ARCFACE_SIZE, CLIP_SIZE
from kiosk.vision.face_detection import Face, FaceDetector
from kiosk.vision.face_tracker import FaceTracker

if TYPE_CHECKING:
    from kiosk.liveness.gate import LivenessGate

STAGES = ("decode", "detect", "align", "recognise", "liveness", "decide", "store")
# The aligned sizes each recogniser reads on every face, made here so alignment is timed as its
# own stage. The hybrid's CLIP crop is left to FaceCrops.at(), made only on the faces CLIP runs
# on (past the gate, once per track's refresh), so it is timed with recognition.
ALIGN_SIZES: dict[str, tuple[int, ...]] = {"face": (ARCFACE_SIZE,), "clip": (CLIP_SIZE,), "hybrid": (ARCFACE_SIZE,)}


class StageTimes:
    """Seconds spent per stage: totals since start, and the frame count they cover."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {s: 0.0 for s in STAGES}
        self.frames = 0

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.totals[stage] += time.perf_counter() - start

    def per_frame_ms(self) -> dict[str, float]:
        n = max(self.frames, 1)
        return {s: 1000.0 * t / n for s, t in self.totals.items()}


@dataclass
class FrameResult:
    faces: list[Face] = field(default_factory=list)
    track_ids: list[int] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)  # tracks whose visit ended with this frame
    predictions: list[Prediction] = field(default_factory=list)
    crops: list[FaceCrops] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    skipped_faces: int = 0  # beyond policy.max_faces


class DoorLoop:
    """The per-frame work, free of cameras, relays and databases so it can be timed alone."""

    def __init__(
        self, detector: FaceDetector, tracker: FaceTracker, policy: DecisionPolicy, max_faces: int,
        times: StageTimes | None = None, liveness: LivenessGate | None = None,
    ):
        self.detector = detector
        self.tracker = tracker
        self.policy = policy
        self.max_faces = max_faces
        self.times = times or StageTimes()
        self.liveness = liveness  # issue 14: also handed to the policy, which asks it before a grant
        policy.liveness = liveness

    def process(self, image: np.ndarray, recogniser: Recogniser, monotonic: float, now: datetime) -> FrameResult:
        times = self.times
        with times.measure("detect"):
            faces = self.detector.detect(image).faces
        result = FrameResult()
        if len(faces) > self.max_faces:  # a flood: the largest (nearest) faces first
            faces = sorted(faces, key=lambda f: f.width * f.height, reverse=True)
            result.skipped_faces = len(faces) - self.max_faces
            faces = faces[: self.max_faces]
        result.faces = faces
        with times.measure("align"):
            crops = [FaceCrops(image, f.keypoints) for f in faces]
            for crop in crops:
                for size in ALIGN_SIZES.get(recogniser.name, (ARCFACE_SIZE, CLIP_SIZE)):
                    crop.at(size)
        result.crops = crops
        with times.measure("recognise"):  # the embedding that tells people apart, kept for the prediction
            features = recogniser.identity_features(crops) if crops else None
        with times.measure("decide"):  # tracking first: a recogniser may reuse work per track
            update = self.tracker.update([f.box for f in faces], features)
            result.track_ids, result.ended = update.ids, update.ended
        with times.measure("recognise"):
            result.predictions = recogniser.predict_tracked(crops, update.ids, top_k=3) if crops else []
            recogniser.forget_tracks(update.ended)
        if self.liveness is not None:  # issue 14: only faces recognition would let in are checked
            with times.measure("liveness"):
                threshold = self.policy.threshold
                wanted = [p.person is not None and p.probability >= threshold for p in result.predictions]
                self.liveness.observe(image, faces, update.ids, wanted, monotonic)
        with times.measure("decide"):
            observations = [Observation(t, p, i) for i, (t, p) in enumerate(zip(update.ids, result.predictions))]
            result.verdicts = self.policy.decide(observations, monotonic, now, update.ended)
            if self.liveness is not None:
                self.liveness.forget(update.ended)
        times.frames += 1
        return result

    def lose_everyone(self, recogniser: Recogniser, monotonic: float, now: datetime) -> list[Verdict]:
        """The camera dropped out: whoever comes back into view is a new visit."""
        ended = self.tracker.reset()
        recogniser.forget_tracks(ended)
        verdicts = self.policy.decide([], monotonic, now, ended)
        if self.liveness is not None:
            self.liveness.forget(ended)
        return verdicts
