"""Which face in this frame is which face from the last frames: greedy IoU association, checked by identity.

A track is one person's visit at the door; the decision policy counts frames per track, so
the tracker is what makes "K of the last N frames" and "one event per visit" mean anything.
Boxes are matched to live tracks by overlap, best pairs first; a track not seen for more
than ``max_missed`` frames has ended. At a door, people barely move between frames, so
overlap finds the candidate, but overlap alone cannot tell one person from the next one
stepping into the same place. So when the recogniser's face embeddings are given, a face
whose embedding has jumped away from its track's last one (cosine below ``min_similarity``)
does not continue it: it starts a new track, a new visit with its own decision and event.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Track:
    id: int
    box: np.ndarray
    missed: int = 0
    frames: int = 1
    feature: np.ndarray | None = None  # the face embedding of the track's latest frame


@dataclass(frozen=True)
class TrackUpdate:
    ids: list[int]  # the track of each box, in the order given
    ended: list[int] = field(default_factory=list)  # tracks whose visit is over


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over union of boxes a (n, 4) and b (m, 4), as an (n, m) array."""
    a, b = np.asarray(a, dtype=np.float32).reshape(-1, 4), np.asarray(b, dtype=np.float32).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-6)


class FaceTracker:
    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 5, min_similarity: float = 0.3):
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.min_similarity = min_similarity
        self.identity_splits = 0  # faces that overlapped a track but were someone else
        self.tracks: dict[int, Track] = {}
        self._next_id = 1

    def update(self, boxes: list[np.ndarray], features: np.ndarray | None = None) -> TrackUpdate:
        """Assign each box a track; ``features`` (unit embeddings, one row per box) keep people apart."""
        ids: list[int | None] = [None] * len(boxes)
        live = list(self.tracks.values())
        if boxes and live:
            overlap = iou(np.stack(boxes), np.stack([t.box for t in live]))
            for flat in np.argsort(-overlap, axis=None):
                i, j = divmod(int(flat), len(live))
                if overlap[i, j] < self.iou_threshold:
                    break
                if ids[i] is not None or live[j].missed < 0:
                    continue
                if not self._same_person(live[j], features, i):
                    self.identity_splits += 1
                    continue
                ids[i] = live[j].id
                live[j].box, live[j].frames, live[j].missed = boxes[i], live[j].frames + 1, -1  # -1: matched now
                live[j].feature = None if features is None else features[i]
        for i, box in enumerate(boxes):
            if ids[i] is None:
                track = Track(self._next_id, box, missed=-1, feature=None if features is None else features[i])
                self.tracks[track.id] = track
                ids[i] = track.id
                self._next_id += 1
        ended = []
        for track in list(self.tracks.values()):
            track.missed += 1
            if track.missed > self.max_missed:
                ended.append(track.id)
                del self.tracks[track.id]
        return TrackUpdate([i for i in ids if i is not None], ended)

    def _same_person(self, track: Track, features: np.ndarray | None, i: int) -> bool:
        if features is None or track.feature is None:
            return True  # nothing to compare: overlap decides
        return float(features[i] @ track.feature) >= self.min_similarity

    def reset(self) -> list[int]:
        """End every track (the camera was lost: whoever was there is a new visit)."""
        ended = list(self.tracks)
        self.tracks.clear()
        return ended
