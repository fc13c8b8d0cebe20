"""The hybrid recogniser: CLIP names the person, the face embedder verifies, both must agree.

The door opens only if CLIP and the face verifier name the same person and both clear the
threshold. That rule is folded into one probability so the ordinary decision
(probability >= threshold) makes it exactly, at any threshold:

    P(person) = min(P_clip(person), P_face(person))  if person is the top choice of both
              = 0                                     otherwise

min, because a grant needs both to clear the threshold (min >= t iff both >= t); 0 on
disagreement, because two recognisers naming different people is a refusal whatever their
confidence. The candidates' `score` keeps min(P_clip, P_face) before the agreement rule, so
a refusal still shows whom each recogniser leaned to; the two recognisers' own predictions
travel with the hybrid one for the audit trail.

The face verifier runs first. A face it puts below ``gate`` cannot clear any threshold at or
above the gate (min(P_clip, P_face) <= P_face), so CLIP is not run for it and it is refused
with probability 0: strangers and passers-by cost no CLIP inference. The configuration keeps
the gate at or below the threshold, which makes the shortcut exact.

A person the face model knows but the CLIP version in force does not (enrolled since CLIP's
last retrain) has no CLIP class: ``awaiting`` = "refuse" refuses them with the note "awaiting
retrain"; "face" lets the face recogniser decide alone at ``awaiting_threshold`` (stricter than
the door's threshold, since the second opinion is missing), noted on the event either way.

At the door, faces come with their track (one person's visit), and CLIP's answer for a
track is reused for up to ``clip_refresh_frames`` frames while the face verifier, run on
every frame, keeps naming the person it named when CLIP last ran. CLIP is the expensive
model (RN50: 60 ms a face on the 2-core development CPU, against 3 ms for the MobileFaceNet
verifier), and a person standing at the door does not change between frames; the verifier
still has to clear the threshold on every frame the decision policy counts, and a track
whose verifier answer changes (someone else stepped into the box) is put to CLIP again at
once. `predict` (identify, evaluation) never reuses anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kiosk.recognition.base import Candidate, FaceCrops, Prediction, Recogniser
from kiosk.recognition.clip_recogniser import ClipRecogniser
from kiosk.recognition.face_recogniser import FaceRecogniser

NAME = "hybrid"


@dataclass(frozen=True)
class HybridPrediction(Prediction):
    """A hybrid answer with the two predictions it was made from."""

    clip: Prediction | None = None
    face: Prediction | None = None

    def as_dict(self, threshold: float) -> dict[str, object]:
        out = super().as_dict(threshold)
        out["parts"] = {
            part.recogniser: {"model_version": part.model_version, "person": part.person, "probability": round(part.probability, 4)}
            for part in (self.clip, self.face)
            if part is not None
        }
        return out


@dataclass
class _ClipAnswer:
    """CLIP's prediction kept for one track, with the verifier's person at the time."""

    prediction: Prediction
    face_person: str | None
    served: int = 1  # frames it has answered, counting the one it was computed on


class HybridRecogniser(Recogniser):
    """model_version is the CLIP version; the face version is in each prediction's parts."""

    name = NAME

    def __init__(
        self, clip: ClipRecogniser, face: FaceRecogniser, gate: float = 0.0, clip_refresh_frames: int = 1,
        awaiting: str = "refuse", awaiting_threshold: float = 1.0,
    ):
        self.clip = clip
        self.face = face
        self.gate = gate
        self.clip_refresh_frames = clip_refresh_frames
        self.awaiting, self.awaiting_threshold = awaiting, awaiting_threshold
        self._clip_knows = frozenset(clip.people)
        self.model_version = clip.model_version
        self._by_track: dict[int, _ClipAnswer] = {}

    @property
    def people(self) -> list[str]:
        """People who can be granted: both models know them, or (awaiting = face) the face model alone."""
        if self.awaiting == "face":
            return list(self.face.people)
        known = set(self.face.people)
        return [p for p in self.clip.people if p in known]

    def predict(self, faces: list[FaceCrops], top_k: int = 5) -> list[Prediction]:
        return self._predict(faces, [None] * len(faces), top_k)

    def predict_tracked(self, faces: list[FaceCrops], tracks: Sequence[int], top_k: int = 5) -> list[Prediction]:
        return self._predict(faces, list(tracks), top_k)

    @property
    def remembered_tracks(self) -> int:
        """Tracks holding a CLIP answer: bounded by the faces in view (the soak checks it)."""
        return len(self._by_track)

    def forget_tracks(self, ended: Sequence[int]) -> None:
        for track in ended:
            self._by_track.pop(track, None)

    def identity_features(self, faces: list[FaceCrops]) -> np.ndarray | None:
        """The face verifier's embeddings: it runs on every face every frame anyway (CLIP's do not tell faces apart)."""
        return self.face.identity_features(faces)

    def _predict(self, faces: list[FaceCrops], tracks: list[int | None], top_k: int) -> list[Prediction]:
        everyone = max(len(self.clip.people), len(self.face.people))
        face_preds = self.face.predict(faces, top_k=everyone)
        clip_preds: dict[int, Prediction] = {}
        fresh: list[int] = []
        awaiting: dict[int, HybridPrediction] = {}
        for i, (face, track) in enumerate(zip(face_preds, tracks)):
            if face.probability < self.gate:
                continue
            if face.person is not None and face.person not in self._clip_knows:
                awaiting[i] = self.without_clip(face, top_k)
                continue
            kept = self._by_track.get(track) if track is not None else None
            if kept is not None and kept.face_person == face.person and kept.served < self.clip_refresh_frames:
                kept.served += 1
                clip_preds[i] = kept.prediction
            else:
                fresh.append(i)
        for i, answer in zip(fresh, self.clip.predict([faces[i] for i in fresh], top_k=everyone)):
            clip_preds[i] = answer
            track = tracks[i]
            if track is not None:
                self._by_track[track] = _ClipAnswer(answer, face_preds[i].person)
        return [
            awaiting[i] if i in awaiting else self.combine(clip_preds[i], f, top_k) if i in clip_preds else self.gated(f, top_k)
            for i, f in enumerate(face_preds)
        ]

    def without_clip(self, face: Prediction, top_k: int = 5) -> HybridPrediction:
        """The face verifier names someone CLIP v{n} does not know yet: refuse, or the face alone, stricter."""
        person = face.person
        if self.awaiting == "face":
            alone = face.probability if face.probability >= self.awaiting_threshold else 0.0
            note = f"awaiting retrain: {person} decided by the face recogniser alone at {self.awaiting_threshold:.2f} (not yet in CLIP v{self.model_version})"
        else:
            alone = 0.0
            note = f"awaiting retrain: {person} is not yet in CLIP v{self.model_version}"
        top = [Candidate(c.person, alone if c.person == person else 0.0, c.probability) for c in face.top[:top_k]]
        return HybridPrediction(NAME, self.model_version, top, note=note, clip=None, face=_trimmed(face, top_k))

    def gated(self, face: Prediction, top_k: int = 5) -> HybridPrediction:
        """Refused on the face verifier alone: below the gate, CLIP could not change the outcome."""
        top = [Candidate(c.person, 0.0, c.probability) for c in face.top[:top_k]]
        return HybridPrediction(NAME, self.model_version, top, clip=None, face=_trimmed(face, top_k))

    def combine(self, clip: Prediction, face: Prediction, top_k: int = 5) -> HybridPrediction:
        clip_p = {c.person: c.probability for c in clip.top}
        face_p = {c.person: c.probability for c in face.top}
        agreed = clip.person if clip.person is not None and clip.person == face.person else None
        weaker = {p: min(clip_p[p], face_p[p]) for p in clip_p.keys() & face_p.keys()}
        ranked = sorted(weaker, key=lambda p: (p != agreed, -weaker[p], p))[:top_k]
        top = [Candidate(p, weaker[p] if p == agreed else 0.0, weaker[p]) for p in ranked]
        return HybridPrediction(NAME, self.model_version, top, clip=_trimmed(clip, top_k), face=_trimmed(face, top_k))


def _trimmed(prediction: Prediction, top_k: int) -> Prediction:
    return Prediction(prediction.recogniser, prediction.model_version, prediction.top[:top_k])
