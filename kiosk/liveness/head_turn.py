"""The active check for high-security doors: a small head turn, asked at random, seen in 3D.

A flat picture (a print, a phone, a tablet), however it is tilted or turned, moves its five
landmarks by one homography: they lie in one plane. A real head's nose sticks out of the
plane of the eyes and mouth, so when the head turns the nose's image leaves where the
best-fitting homography puts it. The check asks for a turn to the left or right (chosen at
random per visit, so a single recorded answer is not enough), and passes a track when,
within ``seconds``, ``hold_frames`` frames in a row show (a) the nose moved the asked way
relative to the eyes and (b) the five points moved non-homographically since the track's
first frame (in a row: one frame's landmark noise must not pass a picture). Neither
alone would do: a flat picture turned hard shows perspective (a), a face moving off-axis
shows some (b).

"Left" and "right" are the person's own, for a camera that is not mirrored: their left is
the image's right (+x). What it cannot stop: a video of the enrolled person turning their
head the asked way, or a 3D mask; the silent check still runs on those.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from kiosk.liveness.base import Judgement

DIRECTIONS = ("left", "right")
NOSE = 2
PROMPTS = {"left": "Please turn your head a little to your left", "right": "Please turn your head a little to your right"}


def _interocular(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[1] - points[0])) or 1.0


def nose_offset(points: np.ndarray) -> float:
    """The nose's offset from the eyes' midpoint along the line of the eyes, in eye distances.

    Measured along the eyes (+: towards the image's right eye), so a head or a picture merely
    rolled does not look turned.
    """
    axis = points[1] - points[0]
    mid = (points[0] + points[1]) / 2
    return float(np.dot(points[NOSE] - mid, axis)) / float(np.dot(axis, axis) or 1.0)


def homography_residual(start: np.ndarray, now: np.ndarray) -> float:
    """RMS distance (in eye distances) of the points from the best homography taking ``start`` onto ``now``.

    Near zero for any view of a flat picture; a turned real head leaves its nose off the fit.
    """
    src, dst = np.asarray(start, np.float64), np.asarray(now, np.float64)
    h, _ = cv2.findHomography(src, dst, 0)  # least squares over all five points
    if h is None:
        return 0.0
    mapped = cv2.perspectiveTransform(src.reshape(-1, 1, 2), h).reshape(-1, 2)
    return float(np.sqrt(np.mean(np.sum((mapped - dst) ** 2, axis=1)))) / _interocular(dst)


@dataclass
class _Visit:
    direction: str
    started: float
    start_points: np.ndarray
    passed: bool = False
    streak: int = 0  # consecutive frames showing the turn
    best: dict[str, float] = field(default_factory=lambda: {"turn": 0.0, "residual": 0.0})


class HeadTurnCheck:
    """Per face track: the asked direction, the first frame's landmarks, and whether the turn was seen."""

    check = "head-turn"

    def __init__(
        self, seconds: float, min_turn: float = 0.08, min_residual: float = 0.02, hold_frames: int = 3,
        choose: Callable[[], str] | None = None,
    ):
        self.seconds = seconds
        self.hold_frames = hold_frames
        self.min_turn = min_turn
        self.min_residual = min_residual
        self._choose = choose or (lambda: random.SystemRandom().choice(DIRECTIONS))
        self._visits: dict[int, _Visit] = {}
        self._now = 0.0

    def observe(self, track_id: int, keypoints: np.ndarray, monotonic: float) -> None:
        self._now = max(self._now, monotonic)
        points = np.asarray(keypoints, np.float64).reshape(5, 2)
        visit = self._visits.get(track_id)
        if visit is None:
            self._visits[track_id] = _Visit(self._choose(), monotonic, points)
            return
        if visit.passed or monotonic - visit.started > self.seconds:
            return
        sign = 1.0 if visit.direction == "left" else -1.0
        turn = sign * (nose_offset(points) - nose_offset(visit.start_points))
        residual = homography_residual(visit.start_points, points)
        visit.best = {"turn": max(visit.best["turn"], turn), "residual": max(visit.best["residual"], residual)}
        shown = turn >= self.min_turn and residual >= self.min_residual
        visit.streak = visit.streak + 1 if shown else 0
        visit.passed = visit.streak >= self.hold_frames

    def prompt(self, track_id: int) -> str | None:
        """What the display should ask this track's person, while the check waits for it."""
        visit = self._visits.get(track_id)
        return None if visit is None or visit.passed else PROMPTS[visit.direction]

    def judge(self, track_id: int, monotonic: float | None = None) -> Judgement:
        visit = self._visits.get(track_id)
        if visit is None:
            return Judgement(self.check, "pending")
        now = self._now if monotonic is None else monotonic
        details = {"head_turn": visit.direction, "head_turn_best": {k: round(v, 3) for k, v in visit.best.items()}}
        if visit.passed:
            return Judgement(self.check, "live", None, details)
        if now - visit.started > self.seconds:
            return Judgement(self.check, "attack", None, details)
        return Judgement(self.check, "pending", None, details)

    def forget(self, ended: Sequence[int]) -> None:
        for track_id in ended:
            self._visits.pop(track_id, None)
