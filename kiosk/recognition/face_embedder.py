"""The ArcFace-family face embedder (MobileFaceNet here): aligned 112x112 crops to unit vectors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from kiosk.config import ModelPaths, require_file
from kiosk.errors import ConfigError
from kiosk.onnx_runtime import available_providers, session_options
from kiosk.storage.checksums import file_sha256


class FaceEmbedder:
    """insightface's ArcFaceONNX over a local file: RGB, (x - 127.5) / 128, cosine-ready output."""

    def __init__(self, model_path: Path, providers: list[str], threads: int = 0):
        from insightface.model_zoo import model_zoo

        model = model_zoo.get_model(
            str(model_path), providers=available_providers(providers), sess_options=session_options(threads)
        )
        if model is None or getattr(model, "taskname", "") != "recognition":
            raise ConfigError(f"config: 'models.embedder' is not a 112x112 face embedder: {model_path}")
        model.input_mean, model.input_std = 127.5, 128.0
        self._model = model
        self.model_path = model_path
        self.size = int(model.input_size[0])
        digest = file_sha256(model_path)[:16]
        self.encoder_key = f"face:{model_path.stem}:{digest}"

    @classmethod
    def from_settings(cls, models: ModelPaths, threads: int = 0) -> FaceEmbedder:
        return cls(require_file("models.embedder", models.embedder), models.onnx_providers, threads)

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """L2-normalised embeddings (n, d) for aligned BGR crops of any multiple of 112."""
        if not crops:
            return np.zeros((0, 0), dtype=np.float32)
        sized = [c if c.shape[0] == self.size else cv2.resize(c, (self.size, self.size), interpolation=cv2.INTER_AREA) for c in crops]
        feats = np.asarray(self._model.get_feat(sized), dtype=np.float32)
        return feats / np.linalg.norm(feats, axis=1, keepdims=True).clip(min=1e-12)

