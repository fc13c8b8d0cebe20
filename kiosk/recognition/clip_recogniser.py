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

from kiosk.errors import KioskError
from kiosk.recognition.base import FaceCrops, MatrixRecogniser
from kiosk.vision.face_alignment import CLIP_SIZE

NAME = "clip"  # the model registry's name for CLIP versions (training and the door agree on it here)


class ImageEncoder(Protocol):
    """CLIP's frozen image tower: kiosk.recognition.clip_model.ClipModel (torch) or kiosk.recognition.clip_onnx.OnnxImageTower."""

    encoder_key: str
    runtime: str  # torch, onnx or onnx-int8

    def encode_images(self, crops: list[np.ndarray]) -> np.ndarray: ...


class ClipRecogniser(MatrixRecogniser):
    name = NAME

    def __init__(self, clip: ImageEncoder, people: list[str], class_embeddings: np.ndarray, logit_scale: float, model_version: int | None):
        super().__init__(people, class_embeddings, model_version)
        self.clip = clip
        self.logit_scale = logit_scale

    @property
    def class_embeddings(self) -> np.ndarray:
        return self.classes

    def encode(self, faces: list[FaceCrops]) -> np.ndarray:
        return self.clip.encode_images([f.at(CLIP_SIZE) for f in faces])

    def probabilities(self, row: np.ndarray) -> np.ndarray:
        """Softmax over logit_scale x cosine, the paper's classifier over the enrolled."""
        logits = self.logit_scale * row.astype(np.float64)
        probs = np.exp(logits - logits.max())
        return probs / probs.sum()

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
