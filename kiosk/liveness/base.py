"""What every liveness check promises, and how a face track's frames become one judgement.

A silent check (`LivenessDetector`) scores single frames: p(live) per face. The door never
trusts one frame: `TrackLiveness` keeps each face track's last N scores and calls the track
live only when K of them reach the threshold, the same K-of-N idea as recognition, so one
lucky frame of a photo does not pass. An active check (the head turn) judges a track from
its landmarks over time instead; both answer with a `Judgement`, and the door grants only
when every check it runs says live.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

# The refusal reason on the event; the door display says something neutral instead.
ATTACK_REASON = "presentation attack suspected"

State = Literal["pending", "live", "attack"]


@dataclass(frozen=True)
class Judgement:
    """A check's verdict on one face track so far."""

    check: str  # "silent", "head-turn"
    state: State
    score: float | None = None  # the track's fused score (mean p(live) of its window), where the check has one
    details: dict[str, Any] = field(default_factory=dict)


class LivenessDetector(ABC):
    """A single-frame liveness model: p(live) for each face box in a frame."""

    name: str

    @abstractmethod
    def score(self, image: np.ndarray, boxes: Sequence[np.ndarray]) -> np.ndarray:
        """p(live) in [0, 1] per box (x1, y1, x2, y2) of a BGR frame, in order."""


class TrackLiveness:
    """K of the last N scored frames of a track at or above the threshold make it live.

    A track is judged an attack once it has N scored frames with fewer than K live ones;
    before that it is pending (the door waits, it does not grant).
    """

    check = "silent"

    def __init__(self, threshold: float, frames: int, required: int):
        if not 1 <= required <= frames:
            raise ValueError(f"liveness needs 1 <= required ({required}) <= frames ({frames})")
        self.threshold = threshold
        self.frames = frames
        self.required = required
        self._windows: dict[int, deque[float]] = {}

    def observe(self, track_id: int, p_live: float) -> None:
        self._windows.setdefault(track_id, deque(maxlen=self.frames)).append(float(p_live))

    def judge(self, track_id: int) -> Judgement:
        window = self._windows.get(track_id)
        if not window:
            return Judgement(self.check, "pending")
        live = sum(1 for p in window if p >= self.threshold)
        score = float(np.mean(window))
        details = {"liveness_frames": f"{live} of {len(window)} >= {self.threshold:.2f} (need {self.required})"}
        if live >= self.required:
            return Judgement(self.check, "live", score, details)
        if len(window) >= self.frames:
            return Judgement(self.check, "attack", score, details)
        return Judgement(self.check, "pending", score, details)

    def is_live(self, track_id: int) -> bool:
        return self.judge(track_id).state == "live"

    def forget(self, ended: Sequence[int]) -> None:
        for track_id in ended:
            self._windows.pop(track_id, None)
