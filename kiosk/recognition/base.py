"""What every recogniser promises: given aligned faces, a probability for each enrolled person.

A recogniser is trained from the stored samples into a versioned artifact (one TrainingRun
row each) and loaded from it; the door, `kiosk identify` and the evaluation all talk to this
interface only, so CLIP, the face embedder and their hybrid are interchangeable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from kiosk.vision.face_alignment import align


class FaceCrops:
    """One face, aligned on demand at each size a recogniser asks for (112, 224, ...)."""

    def __init__(self, image: np.ndarray | None = None, keypoints: np.ndarray | None = None, crop: np.ndarray | None = None):
        if crop is None and (image is None or keypoints is None):
            raise ValueError("need an image with keypoints, or an aligned crop")
        self._image, self._keypoints = image, keypoints
        self._by_size: dict[int, np.ndarray] = {} if crop is None else {crop.shape[0]: crop}
        # Feature vectors already computed for this face, by encoder: the door's tracker and the
        # recogniser read the same embedding, computed once.
        self.features: dict[str, np.ndarray] = {}

    @classmethod
    def from_crop(cls, crop: np.ndarray) -> FaceCrops:
        return cls(crop=crop)

    def at(self, size: int) -> np.ndarray:
        if size not in self._by_size:
            if self._image is not None and self._keypoints is not None:
                self._by_size[size] = align(self._image, self._keypoints, size)
            else:
                source = max(self._by_size.values(), key=lambda c: c.shape[0])
                interp = cv2.INTER_AREA if source.shape[0] > size else cv2.INTER_CUBIC
                self._by_size[size] = cv2.resize(source, (size, size), interpolation=interp)
        return self._by_size[size]


@dataclass(frozen=True)
class Candidate:
    person: str
    probability: float
    score: float  # the raw score behind the probability (cosine, logit)


@dataclass(frozen=True)
class Prediction:
    """A recogniser's answer for one face: candidates best first."""

    recogniser: str
    model_version: int | None
    top: list[Candidate] = field(default_factory=list)
    # Probability that the face is nobody the model may name, where a calibration states it.
    unknown: float | None = None
    # Said in the door's event when the answer was not the recogniser's usual one ("awaiting retrain: ...").
    note: str | None = None

    @property
    def person(self) -> str | None:
        return self.top[0].person if self.top else None

    @property
    def probability(self) -> float:
        return self.top[0].probability if self.top else 0.0

    def as_dict(self, threshold: float) -> dict[str, object]:
        granted = self.probability >= threshold
        return {
            "person": self.person if granted else None,
            "probability": round(self.probability, 4),
            "granted": granted,
            "recogniser": self.recogniser,
            "model_version": self.model_version,
            "top": [{"person": c.person, "probability": round(c.probability, 4), "score": round(c.score, 4)} for c in self.top],
        }


class Recogniser(ABC):
    """A loaded model version that names faces."""

    name: str
    model_version: int | None

    @property
    @abstractmethod
    def people(self) -> list[str]:
        """The enrolled people this version knows, in class order."""

    @abstractmethod
    def predict(self, faces: list[FaceCrops], top_k: int = 5) -> list[Prediction]:
        """One Prediction per face, in order."""

    def predict_tracked(self, faces: list[FaceCrops], tracks: Sequence[int], top_k: int = 5) -> list[Prediction]:
        """As predict, for the door's faces with their track ids: a recogniser may reuse work per track."""
        return self.predict(faces, top_k)

    def forget_tracks(self, ended: Sequence[int]) -> None:
        """These visits are over: drop anything kept for them (nothing, unless predict_tracked keeps it)."""

    def identity_features(self, faces: list[FaceCrops]) -> np.ndarray | None:
        """Unit face embeddings (n, d) that tell people apart, for the tracker; None if this recogniser has none.

        Kept on the crops, so the prediction that follows on the same frame does not compute them again.
        """
        return None


class MatrixRecogniser(Recogniser):
    """Faces encoded to unit vectors, compared by cosine with one vector per enrolled person.

    Both the face embedder (templates) and CLIP (class text embeddings) work this way; they
    differ only in how a face is encoded and how a row of cosines becomes probabilities.
    """

    def __init__(self, people: list[str], classes: np.ndarray, model_version: int | None):
        self._people = people
        self.classes = classes
        self.model_version = model_version

    @property
    def people(self) -> list[str]:
        return self._people

    @abstractmethod
    def encode(self, faces: list[FaceCrops]) -> np.ndarray:
        """Unit feature vectors (n, d), one per face."""

    @abstractmethod
    def probabilities(self, row: np.ndarray) -> np.ndarray:
        """Each person's probability from one face's row of cosines."""

    def encoded(self, faces: list[FaceCrops]) -> np.ndarray:
        """`encode`, reusing what was already computed for a face this frame (the tracker's features)."""
        key = f"{type(self).__name__}@{id(self)}"
        missing = [f for f in faces if key not in f.features]
        if missing:
            for face, vector in zip(missing, self.encode(missing)):
                face.features[key] = vector
        return np.stack([f.features[key] for f in faces])

    def scores(self, faces: list[FaceCrops]) -> np.ndarray:
        """Cosine of each face (rows) to each person's vector (columns)."""
        if not faces:
            return np.zeros((0, len(self._people)), dtype=np.float32)
        return self.encoded(faces) @ self.classes.T

    def predict(self, faces: list[FaceCrops], top_k: int = 5) -> list[Prediction]:
        return [self.prediction_from_scores(row, top_k) for row in self.scores(faces)]

    def prediction_from_scores(self, row: np.ndarray, top_k: int = 5) -> Prediction:
        probs = self.probabilities(row)
        order = np.argsort(-row)[:top_k]
        return Prediction(self.name, self.model_version, [Candidate(self._people[i], float(probs[i]), float(row[i])) for i in order])
