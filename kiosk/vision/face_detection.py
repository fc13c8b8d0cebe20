"""SCRFD face detection: every face in a frame with its box, score and five keypoints.

The detector is insightface's SCRFD class, routed by its model zoo from a configured ONNX
file. "No face" is an ordinary result with a reason, because at a door it is the common case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from kiosk.config import DetectionConfig, ModelPaths, require_file
from kiosk.errors import ConfigError
from kiosk.onnx_runtime import available_providers, session_options


@dataclass(frozen=True)
class Face:
    """One detected face in image coordinates."""

    box: np.ndarray  # x1, y1, x2, y2
    score: float
    keypoints: np.ndarray  # (5, 2): left eye, right eye, nose, left mouth, right mouth

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def centre(self) -> tuple[float, float]:
        return float(self.box[0] + self.box[2]) / 2, float(self.box[1] + self.box[3]) / 2


@dataclass(frozen=True)
class Detection:
    """The faces found in one image; ``reason`` says why the list is empty."""

    faces: list[Face] = field(default_factory=list)
    reason: str = ""
    padded: bool = False

    def __bool__(self) -> bool:
        return bool(self.faces)


def primary_face(faces: list[Face], image_shape: tuple[int, ...]) -> Face | None:
    """The face that matters when enrolling: the largest, most central one.

    LFW-style frames and door cameras often hold a second person at the edge; size alone
    would sometimes pick a large face at the border, centring alone a small one behind.
    """
    if not faces:
        return None
    h, w = image_shape[:2]
    diag2 = float(w * w + h * h)

    def merit(face: Face) -> float:
        cx, cy = face.centre
        offset2 = ((cx - w / 2) ** 2 + (cy - h / 2) ** 2) / diag2
        area = face.width * face.height / float(w * h)
        return area - 2.0 * offset2

    return max(faces, key=merit)


class FaceDetector:
    """SCRFD loaded through insightface's model zoo from a local ONNX file."""

    def __init__(self, model_path: Path, config: DetectionConfig, providers: list[str], threads: int = 0):
        from insightface.model_zoo import model_zoo

        self.config = config
        self.model_path = model_path
        model = model_zoo.get_model(
            str(model_path),
            providers=available_providers(providers),
            sess_options=session_options(threads),
        )
        if model is None or getattr(model, "taskname", "") != "detection":
            raise ConfigError(f"config: 'models.detector' is not an SCRFD detector: {model_path}")
        if not getattr(model, "use_kps", False):
            raise ConfigError(f"config: 'models.detector' has no keypoint outputs (need a *_kps model): {model_path}")
        size = (config.input_size, config.input_size)
        model.prepare(-1 if providers == ["CPUExecutionProvider"] else 0, input_size=size, det_thresh=config.score_threshold)
        self._model = model
        self._size = size

    @classmethod
    def from_settings(cls, models: ModelPaths, config: DetectionConfig, threads: int = 0) -> FaceDetector:
        return cls(require_file("models.detector", models.detector), config, models.onnx_providers, threads)

    def detect(self, image: np.ndarray) -> Detection:
        """All faces in a BGR image; a padded second pass rescues faces cropped tight to the edge."""
        faces = self._detect_once(image)
        if faces:
            return Detection(faces)
        if self.config.pad_fraction > 0:
            faces = self._detect_padded(image)
            if faces:
                return Detection(faces, padded=True)
        return Detection([], reason=self._why_none(image))

    def _detect_once(self, image: np.ndarray) -> list[Face]:
        boxes, kps = self._model.detect(image, input_size=self._size)
        faces = []
        for box, points in zip(boxes, kps if kps is not None else []):
            if box[2] - box[0] < self.config.min_face_px:
                continue
            faces.append(Face(box=box[:4].astype(np.float32), score=float(box[4]), keypoints=points.astype(np.float32)))
        return faces

    def _detect_padded(self, image: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        py, px = int(h * self.config.pad_fraction), int(w * self.config.pad_fraction)
        padded = cv2.copyMakeBorder(image, py, py, px, px, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        shift = np.array([px, py], dtype=np.float32)
        return [
            Face(box=f.box - np.tile(shift, 2), score=f.score, keypoints=f.keypoints - shift)
            for f in self._detect_once(padded)
        ]

    def _why_none(self, image: np.ndarray) -> str:
        h, w = image.shape[:2]
        if min(h, w) < self.config.min_face_px:
            return f"no face: image is only {w}x{h} pixels"
        if float(image.std()) < 2.0:
            return "no face: image is blank (uniform colour)"
        return f"no face found above score {self.config.score_threshold:.2f}"
