"""Which recogniser decides at this door, and why: the one place that chooses and loads it.

Today only the face-embedding recogniser is built here; `recognition.recogniser` = auto
resolves to it. The choice and its reason are returned together so the start-up log and
`kiosk doctor` can say what is in force.
"""

from __future__ import annotations

from dataclasses import dataclass

from calibration.fitting import apply_calibration
from kiosk.context import KioskContext
from kiosk.errors import KioskError
from kiosk.face_recognizer import NAME as FACE, FaceRecogniser
from kiosk.model_registry import ModelRegistry
from kiosk.recognition import Recogniser


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
    run = registry(ctx).in_force(FACE)
    if run is None:
        raise KioskError("no face model has been trained yet: enrol people, then run `kiosk retrain`")
    model = apply_calibration(ctx, FaceRecogniser.load(registry(ctx).verified_path(run), ctx.embedder, run.id))
    return Selection(model, f"face recogniser v{run.id} ({len(model.people)} people): configured {wanted!r}")
