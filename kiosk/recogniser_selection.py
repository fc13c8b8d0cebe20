"""Which recogniser decides at this door, and why: the one place that chooses and loads it.

`recognition.recogniser`:
  face    the face-embedding recogniser alone;
  clip    the fine-tuned CLIP recogniser alone;
  hybrid  CLIP names, the face embedder verifies (kiosk/hybrid_recognizer.py);
  auto    hybrid when the CLIP weights load and a CLIP version is trained, else face alone.
When the configuration demands clip or hybrid and CLIP cannot be used, the kiosk refuses to
start (KioskError) rather than quietly deciding with less than was asked for. Under auto, a
missing CLIP is said in one log line and the face recogniser runs alone. The choice and its
reason are returned together so the start-up log and `kiosk doctor` can say what is in force.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kiosk.context import KioskContext
from kiosk.errors import KioskError
from kiosk.face_recognizer import NAME as FACE, FaceRecogniser
from kiosk.model_registry import ModelRegistry
from kiosk.recognition import Recogniser

if TYPE_CHECKING:
    from kiosk.clip_recognizer import ClipRecogniser
    from kiosk.hybrid_recognizer import HybridRecogniser

log = logging.getLogger(__name__)

CLIP = "clip"


@dataclass(frozen=True)
class Selection:
    recogniser: Recogniser
    reason: str


def registry(ctx: KioskContext) -> ModelRegistry:
    return ModelRegistry(ctx.sessions, ctx.settings.artifacts_dir)


def load_recogniser(ctx: KioskContext) -> Selection:
    """The recogniser in force per the configuration, or KioskError saying what is missing."""
    wanted = ctx.settings.recognition.recogniser
    if wanted == "face":
        face = _load_face(ctx)
        return Selection(face, f"face recogniser v{face.model_version} ({len(face.people)} people): configured 'face'")
    if wanted == CLIP:
        clip = _demanded_clip(ctx, wanted)
        return Selection(clip, f"clip recogniser v{clip.model_version} ({len(clip.people)} people): configured 'clip'")
    if wanted == "hybrid":
        from kiosk.hybrid_recognizer import HybridRecogniser

        hybrid = HybridRecogniser(_demanded_clip(ctx, wanted), _load_face(ctx))
        return Selection(hybrid, _hybrid_reason(hybrid, "configured 'hybrid'"))
    face = _load_face(ctx)
    try:
        clip = _load_clip(ctx)
    except KioskError as exc:
        log.warning("CLIP not used: %s; running the face recogniser alone", exc)
        return Selection(
            face, f"face recogniser v{face.model_version} ({len(face.people)} people): configured 'auto', CLIP unavailable ({exc})"
        )
    from kiosk.hybrid_recognizer import HybridRecogniser

    hybrid = HybridRecogniser(clip, face)
    return Selection(hybrid, _hybrid_reason(hybrid, "configured 'auto' and both models loaded"))


def _hybrid_reason(hybrid: HybridRecogniser, why: str) -> str:
    clip, face = hybrid.clip.model_version, hybrid.face.model_version
    return f"hybrid recogniser (clip v{clip} + face v{face}, {len(hybrid.people)} people): {why}"


def _load_face(ctx: KioskContext) -> FaceRecogniser:
    run = registry(ctx).in_force(FACE)
    if run is None:
        raise KioskError("no face model has been trained yet: enrol people, then run `kiosk retrain`")
    return FaceRecogniser.load(registry(ctx).verified_path(run), ctx.embedder, run.id)


def _demanded_clip(ctx: KioskContext, wanted: str) -> ClipRecogniser:
    try:
        return _load_clip(ctx)
    except KioskError as exc:
        raise KioskError(f"recognition.recogniser = {wanted!r} needs CLIP, refusing to start: {exc}") from None


def _load_clip(ctx: KioskContext) -> ClipRecogniser:
    """The CLIP version in force over the configured weights; KioskError (one line) if unusable."""
    from kiosk.clip_model import ClipModel
    from kiosk.clip_recognizer import ClipRecogniser

    clip = ClipModel.from_settings(ctx.settings.models)
    run = registry(ctx).in_force(CLIP)
    if run is None:
        raise KioskError("no CLIP model has been trained yet: run `kiosk retrain`")
    return ClipRecogniser.load(registry(ctx).verified_path(run), clip, run.id)
