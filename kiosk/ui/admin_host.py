"""What the admin screens need from the app that hosts them, as a Protocol.

The screens type their app as AdminHost instead of importing kiosk.ui.admin_app, so the app
imports its screens and never the reverse (no import cycle), and a test can host a screen in
any App that carries these attributes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from kiosk.context import KioskContext

FrameSource = Callable[[Path, int, float], list[np.ndarray]]


class AdminHost(Protocol):
    kiosk: KioskContext
    clock: Callable[[], datetime]
    tz: tzinfo | None
    poll_seconds: float
    frame_source: FrameSource
    page_size: int

    @property
    def actor(self) -> str: ...

    def call_from_thread(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...

    def push_screen(self, screen: Any, callback: Callable[[Any], Any] | None = None, **kwargs: Any) -> Any: ...
