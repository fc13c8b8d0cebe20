"""Which recogniser decides at this door, and why: the one place that chooses and loads it.

Today only the face-embedding recogniser is built here; `recognition.recogniser` = auto
resolves to it. The choice and its reason are returned together so the start-up log and
`kiosk doctor` can say what is in force.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from calibration.fitting import apply_calibration
from kiosk.context import KioskContext
from kiosk.errors import KioskError
from kiosk.face_recognizer import NAME as FACE, FaceRecogniser
from kiosk.model_registry import ModelRegistry
from kiosk.recognition import Recogniser

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Selection:
    recogniser: Recogniser
    reason: str


def registry(ctx: KioskContext) -> ModelRegistry:
    return ModelRegistry(ctx.sessions, ctx.settings.artifacts_dir)


def load_recogniser(ctx: KioskContext) -> Selection:
    """The recogniser in force per the configuration, or KioskError saying what is missing."""
    wanted = ctx.settings.recognition.recogniser
    if wanted in ("clip", "hybrid"):
        raise KioskError(f"recognition.recogniser = {wanted!r}, but this build has no CLIP recogniser")
    found = registry(ctx).newest_intact(FACE)
    if found is None:
        raise KioskError("no face model has been trained yet: enrol people, then run `kiosk retrain`")
    run, path, refused = found
    model = apply_calibration(ctx, FaceRecogniser.load(path, ctx.embedder, run.id))
    reason = f"face recogniser v{run.id} ({len(model.people)} people): configured {wanted!r}"
    if refused:
        # A damaged newest version must not stop the door: the newest intact one stays in force.
        log.warning("%s; falling back to face model v%s", refused[0], run.id)
        reason += f"; {refused[0]}; fell back to v{run.id}"
    return Selection(model, reason)
