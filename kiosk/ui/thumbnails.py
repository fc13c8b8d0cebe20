"""Aligned face crops drawn with half-block characters, two pixels per terminal cell.

Every colour terminal (SSH included) can show these, unlike sixel or kitty graphics, so one
code path serves the console and remote admins; Textual downgrades the colours where the
terminal has fewer. Each thumbnail also carries a text caption, for a screen reader or log.
"""

from __future__ import annotations

import cv2
import numpy as np
from rich.style import Style
from rich.text import Text


def half_blocks(image: np.ndarray, width: int) -> Text:
    """A BGR image as ``width`` cells wide and width/2 cells tall (square pixels on screen)."""
    rows = max(2, width - width % 2)
    small = cv2.resize(image, (width, rows), interpolation=cv2.INTER_AREA)
    rgb = small[:, :, ::-1] if small.ndim == 3 else np.repeat(small[:, :, None], 3, axis=2)
    text = Text()
    for y in range(0, rows, 2):
        for x in range(width):
            top, bottom = rgb[y, x], rgb[y + 1, x]
            text.append("▀", Style(color=f"rgb({top[0]},{top[1]},{top[2]})", bgcolor=f"rgb({bottom[0]},{bottom[1]},{bottom[2]})"))
        if y + 2 < rows:
            text.append("\n")
    return text
