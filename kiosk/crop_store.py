"""Aligned face crops on disk under the data directory: written atomically, private to the service."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from kiosk.errors import ImageError
from kiosk.images import decode_image


def person_dir(crops_dir: Path, person_id: int) -> Path:
    return crops_dir / str(person_id)


def write_crop(path: Path, crop: np.ndarray) -> None:
    """PNG (lossless), written to a temporary name, fsynced, then renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    ok, buf = cv2.imencode(".png", crop)
    if not ok:
        raise ImageError("could not encode the aligned crop")
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, buf.tobytes())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_crop(path: Path) -> np.ndarray:
    return decode_image(path.read_bytes())


def remove_person_crops(crops_dir: Path, person_id: int) -> None:
    shutil.rmtree(person_dir(crops_dir, person_id), ignore_errors=True)
