"""The door's liveness stage: which faces are checked, and one judgement per face track.

Only faces the recogniser would grant are checked (as the hybrid gate spares CLIP): strangers
and empty frames cost nothing, and a track the silent check judged live is not scored again.
The policy asks ``judge`` when recognition alone would grant; a grant needs every check it
runs (the silent one, and the head turn where the door asks for it) to say live.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kiosk.liveness.base import Judgement, LivenessDetector, TrackLiveness
from kiosk.liveness.head_turn import HeadTurnCheck
from kiosk.vision.face_detection import Face


class LivenessGate:
    def __init__(self, detector: LivenessDetector, threshold: float, frames: int, required: int, head_turn: HeadTurnCheck | None = None):
        self.detector = detector
        self.silent = TrackLiveness(threshold, frames, required)
        self.head_turn = head_turn
        self.scored_faces = 0  # how many faces the detector ran on (the bench reads it)
        self._prompted: set[int] = set()

    @property
    def threshold(self) -> float:
        return self.silent.threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        self.silent.threshold = value

    def observe(self, image: np.ndarray, faces: Sequence[Face], track_ids: Sequence[int], would_grant: Sequence[bool], monotonic: float) -> None:
        """Check this frame's faces that recognition would let in."""
        wanted = [i for i, w in enumerate(would_grant) if w]
        todo = [i for i in wanted if not self.silent.is_live(track_ids[i])]
        if todo:
            scores = self.detector.score(image, [faces[i].box for i in todo])
            self.scored_faces += len(todo)
            for i, p in zip(todo, scores):
                self.silent.observe(track_ids[i], float(p))
        if self.head_turn is not None:
            for i in wanted:
                self.head_turn.observe(track_ids[i], faces[i].keypoints, monotonic)

    def judge(self, track_id: int) -> Judgement:
        """Attack if any check says so (the silent one first), pending while any waits, else live."""
        silent = self.silent.judge(track_id)
        judgements = [silent] + ([self.head_turn.judge(track_id)] if self.head_turn is not None else [])
        details = {k: v for j in judgements for k, v in j.details.items()}
        for j in judgements:
            if j.state == "attack":
                return Judgement(j.check, "attack", silent.score, details)
        waiting = [j for j in judgements if j.state == "pending"]
        if waiting:
            return Judgement(waiting[0].check, "pending", silent.score, details)
        return Judgement(silent.check, "live", silent.score, details)

    def new_prompts(self, track_ids: Sequence[int]) -> list[str]:
        """The head turn to ask of tracks that have not been asked yet (once per visit)."""
        if self.head_turn is None:
            return []
        out = []
        for track_id in track_ids:
            text = self.head_turn.prompt(track_id)
            if text is not None and track_id not in self._prompted:
                self._prompted.add(track_id)
                out.append(text)
        return out

    def forget(self, ended: Sequence[int]) -> None:
        self.silent.forget(ended)
        if self.head_turn is not None:
            self.head_turn.forget(ended)
        self._prompted.difference_update(ended)
