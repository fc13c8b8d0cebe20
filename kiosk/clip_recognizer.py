"""The CLIP recogniser: one image encode plus one product against the saved class embeddings.

A model version holds the fine-tuned text tower's class embeddings (one unit vector per
person, from their prompt), so the door never runs the text tower. The probability is the
softmax over logit_scale x cosine(image, each person's embedding), as in training.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import numpy as np

from kiosk.clip_training import NAME
from kiosk.errors import KioskError
from kiosk.face_alignment import CLIP_SIZE
from kiosk.recognition import Candidate, FaceCrops, Prediction, Recogniser


class ImageEncoder(Protocol):
    """CLIP's frozen image tower: kiosk.clip_model.ClipModel (torch) or kiosk.clip_onnx.OnnxImageTower."""

    encoder_key: str

    def encode_images(self, crops: list[np.ndarray]) -> np.ndarray: ...


class ClipRecogniser(Recogniser):
    name = NAME

    def __init__(self, clip: ImageEncoder, people: list[str], class_embeddings: np.ndarray, logit_scale: float, model_version: int | None):
        self.clip = clip
        self._people = people
        self.class_embeddings = class_embeddings
        self.logit_scale = logit_scale
        self.model_version = model_version

    @property
    def people(self) -> list[str]:
        return self._people

    def scores(self, faces: list[FaceCrops]) -> np.ndarray:
        """Cosine of each face (rows) to each person's class embedding (columns)."""
        if not faces:
            return np.zeros((0, len(self._people)), dtype=np.float32)
        return self.clip.encode_images([f.at(CLIP_SIZE) for f in faces]) @ self.class_embeddings.T

    def predict(self, faces: list[FaceCrops], top_k: int = 5) -> list[Prediction]:
        return [self.prediction_from_scores(row, top_k) for row in self.scores(faces)]

    def prediction_from_scores(self, row: np.ndarray, top_k: int = 5) -> Prediction:
        logits = self.logit_scale * row.astype(np.float64)
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        order = np.argsort(-row)[:top_k]
        return Prediction(NAME, self.model_version, [Candidate(self._people[i], float(probs[i]), float(row[i])) for i in order])

    @classmethod
    def load(cls, folder: Path, clip: ImageEncoder, model_version: int | None) -> ClipRecogniser:
        meta = json.loads((folder / "meta.json").read_text())
        if meta["encoder"] != clip.encoder_key:
            raise KioskError(
                f"clip model v{model_version} was built with {meta['encoder']}, but the configured CLIP is "
                f"{clip.encoder_key}: run `kiosk retrain`"
            )
        embeddings = np.load(folder / "class_embeddings.npy")
        return cls(clip, list(meta["people"]), embeddings, float(meta["logit_scale"]), model_version)
