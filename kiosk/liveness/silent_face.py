"""Silent-Face anti-spoofing (minivision-ai): two MiniFASNets on one frame, no user action.

MiniFASNetV2 sees the face box enlarged 2.7 times, MiniFASNetV1SE 4.0 times: the wider crop
shows the edges of a phone or a sheet of paper around the face. Both take 80x80 BGR crops as
raw 0-255 floats (the original code never divides by 255) and give three logits, of which
index 1 is "live"; the two softmax live probabilities are averaged, as the original project
decides. See ../shared/models/README.md for where the files come from.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import onnxruntime

from kiosk.errors import ConfigError
from kiosk.liveness.base import LivenessDetector
from kiosk.onnx_runtime import available_providers, session_options

INPUT_SIZE = 80
LIVE_INDEX = 1


def scaled_crop(image: np.ndarray, box: np.ndarray, scale: float, size: int = INPUT_SIZE) -> np.ndarray:
    """The box enlarged ``scale`` times about its centre, shrunk to fit and shifted inside the frame.

    As Silent-Face's CropImage does: the models were trained on crops made this way, so a
    face near the edge gets a shifted crop rather than a padded one.
    """
    src_h, src_w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    box_w, box_h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    scale = min((src_h - 1) / box_h, (src_w - 1) / box_w, scale)
    new_w, new_h = box_w * scale, box_h * scale
    cx, cy = x1 + box_w / 2, y1 + box_h / 2
    left, top, right, bottom = cx - new_w / 2, cy - new_h / 2, cx + new_w / 2, cy + new_h / 2
    if left < 0:
        right, left = right - left, 0.0
    if top < 0:
        bottom, top = bottom - top, 0.0
    if right > src_w - 1:
        left, right = left - (right - src_w + 1), src_w - 1.0
    if bottom > src_h - 1:
        top, bottom = top - (bottom - src_h + 1), src_h - 1.0
    crop = image[int(top) : int(bottom) + 1, int(left) : int(right) + 1]
    return cv2.resize(crop, (size, size))


def _softmax_live(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e[:, LIVE_INDEX] / e.sum(axis=1)


class _MiniFASNet:
    def __init__(self, path: Path, scale: float, providers: list[str], threads: int):
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), sess_options=session_options(threads), providers=available_providers(providers)
            )
        except Exception as exc:  # onnxruntime raises its own exception types for a bad file
            raise ConfigError(f"config: liveness model {path} does not load: {exc}") from None
        inp = self.session.get_inputs()[0]
        if list(inp.shape[1:]) != [3, INPUT_SIZE, INPUT_SIZE]:
            raise ConfigError(f"config: liveness model {path} takes {inp.shape}, not [n, 3, 80, 80]")
        self.input = inp.name
        self.batched = not isinstance(inp.shape[0], int)  # V1SE's export is fixed to batch 1
        self.scale = scale

    def live(self, image: np.ndarray, boxes: Sequence[np.ndarray]) -> np.ndarray:
        batch = np.stack([scaled_crop(image, b, self.scale) for b in boxes]).astype(np.float32).transpose(0, 3, 1, 2)
        if self.batched:
            logits = self.session.run(None, {self.input: batch})[0]
        else:
            logits = np.concatenate([self.session.run(None, {self.input: batch[i : i + 1]})[0] for i in range(len(batch))])
        return _softmax_live(np.asarray(logits, dtype=np.float64))


class SilentFace(LivenessDetector):
    """MiniFASNetV2 (2.7x) and MiniFASNetV1SE (4.0x), live probabilities averaged per face."""

    name = "silent-face"

    def __init__(self, v2_path: Path, v1se_path: Path, providers: list[str], threads: int = 0):
        self.models = [_MiniFASNet(v2_path, 2.7, providers, threads), _MiniFASNet(v1se_path, 4.0, providers, threads)]
        self.paths = (v2_path, v1se_path)

    def score(self, image: np.ndarray, boxes: Sequence[np.ndarray]) -> np.ndarray:
        if len(boxes) == 0:
            return np.zeros(0, dtype=np.float64)
        return np.mean([m.live(image, boxes) for m in self.models], axis=0)
