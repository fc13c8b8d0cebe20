"""Reading images from disk or bytes into BGR arrays, with a reason for every failure.

Decoding goes through OpenCV (JPEG, PNG, PGM/PPM, BMP, TIFF, WebP), always to 3-channel
8-bit BGR, so grayscale and 16-bit files work like any other. Huge images are decoded at a
reduced scale straight from the file (JPEG's DCT scaling), never at full size first.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from kiosk.errors import ImageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".pnm", ".bmp", ".tif", ".tiff", ".webp"})

_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))


def read_image(path: Path, max_side: int = 4096) -> np.ndarray:
    """Decode an image file to BGR uint8, or raise ImageError saying why it cannot be used."""
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise ImageError("is a folder, not an image") from None
    except FileNotFoundError:
        raise ImageError("file does not exist") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    return decode_image(data, max_side)


def decode_image(data: bytes, max_side: int = 4096) -> np.ndarray:
    if not data:
        raise ImageError("empty file (0 bytes)")
    flag = cv2.IMREAD_COLOR
    width, height = _header_size(data)
    for factor, reduced in _REDUCED:
        if max(width, height) / factor >= max_side:
            flag = reduced
            break
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if img is None or img.size == 0:
        raise ImageError("corrupt or truncated image data")
    if max(img.shape[:2]) > max_side:
        scale = max_side / max(img.shape[:2])
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return img


def _header_size(data: bytes) -> tuple[int, int]:
    """Width and height from the header alone, so a bad file is refused before decoding."""
    from io import BytesIO

    try:
        with Image.open(BytesIO(data)) as im:
            return im.size
    except UnidentifiedImageError:
        raise ImageError("not an image file (unrecognised format)") from None
    except Image.DecompressionBombError:
        raise ImageError("image dimensions too large to decode safely") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"unreadable image header ({exc})") from None


def natural_key(path: Path) -> list[object]:
    """Sort key that puts 2.jpg before 10.jpg, part by part along the path."""
    return [int(t) if t.isdigit() else t for part in path.parts for t in re.split(r"(\d+)", part)]


def image_files(folder: Path, recursive: bool = True) -> list[Path]:
    """The image files in a folder (by suffix; hidden files left out), in natural order.

    The one way the kiosk lists photos: enrolment, replayed cameras, calibration's strangers,
    the evaluation protocol and the demo all read folders through here.
    """
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        (p for p in found if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")),
        key=lambda p: natural_key(p.relative_to(folder)),
    )


def iter_image_files(path: Path) -> list[Path]:
    """The image files under a folder (recursively), or the file itself."""
    return image_files(path) if path.is_dir() else [path]
