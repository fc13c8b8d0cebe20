"""Five-point similarity alignment to the ArcFace template, at the size each recogniser needs.

112x112 for the ArcFace family, 224x224 for CLIP (a multiple of 112, so the same template
scaled up). Uses insightface's face_align, the alignment the embedders were trained with.
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np

ARCFACE_SIZE = 112
CLIP_SIZE = 224


def template(size: int = ARCFACE_SIZE) -> np.ndarray:
    """Where the five keypoints land in an aligned crop of this size."""
    from insightface.utils.face_align import arcface_dst

    _check_size(size)
    return arcface_dst * (size / 112.0)


def alignment_matrix(keypoints: np.ndarray, size: int = ARCFACE_SIZE) -> np.ndarray:
    """The 2x3 similarity transform taking the detected keypoints onto the template."""
    from insightface.utils.face_align import estimate_norm

    _check_size(size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # skimage's estimate() deprecation, inside insightface
        return estimate_norm(np.asarray(keypoints, dtype=np.float32), size)


def align(image: np.ndarray, keypoints: np.ndarray, size: int = ARCFACE_SIZE) -> np.ndarray:
    """The aligned square face crop (BGR), black where the warp leaves the frame."""
    matrix = alignment_matrix(keypoints, size)
    return cv2.warpAffine(image, matrix, (size, size), borderValue=0.0)


def _check_size(size: int) -> None:
    if size <= 0 or size % 112:
        raise ValueError(f"aligned size must be a multiple of 112, got {size}")
