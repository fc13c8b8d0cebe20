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
"""

from __future__ import annotations

from dataclasses import dataclass

from kiosk.clip_recognizer import ClipRecogniser
from kiosk.face_recognizer import FaceRecogniser
from kiosk.recognition import Candidate, FaceCrops, Prediction, Recogniser

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


class HybridRecogniser(Recogniser):
    """model_version is the CLIP version; the face version is in each prediction's parts."""

    name = NAME

    def __init__(self, clip: ClipRecogniser, face: FaceRecogniser, gate: float = 0.0):
        self.clip = clip
        self.face = face
        self.gate = gate
        self.model_version = clip.model_version

    @property
    def people(self) -> list[str]:
        """People both models know: a person missing from either can never be granted."""
        known = set(self.face.people)
        return [p for p in self.clip.people if p in known]

    def predict(self, faces: list[FaceCrops], top_k: int = 5) -> list[Prediction]:
        everyone = max(len(self.clip.people), len(self.face.people))
        face_preds = self.face.predict(faces, top_k=everyone)
        worth = [i for i, f in enumerate(face_preds) if f.probability >= self.gate]
        clip_preds = dict(zip(worth, self.clip.predict([faces[i] for i in worth], top_k=everyone)))
        return [
            self.combine(clip_preds[i], f, top_k) if i in clip_preds else self.gated(f, top_k)
            for i, f in enumerate(face_preds)
        ]

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
