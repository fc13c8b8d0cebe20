"""Which recogniser decides at this door, and why: the one place that chooses and loads it.

`recognition.recogniser`:
  face    the face-embedding recogniser alone;
  clip    the fine-tuned CLIP recogniser alone;
  hybrid  CLIP names, the face embedder verifies (kiosk/recognition/hybrid_recogniser.py);
  auto    hybrid when the CLIP weights load and a CLIP version is trained, else face alone.
When the configuration demands clip or hybrid and CLIP cannot be used, the kiosk refuses to
start (KioskError) rather than quietly deciding with less than was asked for. Under auto, a
missing CLIP is said in one log line and the face recogniser runs alone. The choice and its
reason are returned together so the start-up log and `kiosk doctor` can say what is in force.

Each model is the newest version whose artifact still hashes as recorded (a damaged newest
version is refused and the one before it stays in force, said in the reason), with the
newest calibration stored for that version applied.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kiosk.context import KioskContext
from kiosk.errors import KioskError
from kiosk.recognition.base import Recogniser
from kiosk.recognition.face_recogniser import NAME as FACE
from kiosk.recognition.face_recogniser import FaceRecogniser
from kiosk.recognition.model_registry import ModelRegistry
from kiosk.recognition.score_calibration import apply_calibration, uncalibrated

if TYPE_CHECKING:
    from db.models import TrainingRun
    from kiosk.recognition.hybrid_recogniser import HybridRecogniser

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
    notes: list[str] = []  # versions refused as damaged, for the reason
    if wanted == "face":
        face = _load_face(ctx, notes)
        return Selection(face, _noted(f"face recogniser v{face.model_version} ({len(face.people)} people): configured 'face'", notes))
    if wanted == CLIP:
        clip = _demanded_clip(ctx, wanted, notes)
        return Selection(clip, _noted(f"clip recogniser v{clip.model_version} on {_tower(clip)} ({len(clip.people)} people): configured 'clip'", notes))
    if wanted == "hybrid":
        hybrid = _hybrid(ctx, _demanded_clip(ctx, wanted, notes), _load_face(ctx, notes))
        return Selection(hybrid, _noted(_hybrid_reason(hybrid, "configured 'hybrid'"), notes))
    face = _load_face(ctx, notes)
    try:
        clip = _load_clip(ctx, notes)
    except KioskError as exc:
        log.warning("CLIP not used: %s; running the face recogniser alone", exc)
        return Selection(
            face,
            _noted(f"face recogniser v{face.model_version} ({len(face.people)} people): configured 'auto', CLIP unavailable ({exc})", notes),
        )
    hybrid = _hybrid(ctx, clip, face)
    return Selection(hybrid, _noted(_hybrid_reason(hybrid, "configured 'auto' and both models loaded"), notes))


def _noted(reason: str, notes: list[str]) -> str:
    return "; ".join([reason, *notes])


def _hybrid(ctx: KioskContext, clip: Recogniser, face: Recogniser) -> HybridRecogniser:
    from kiosk.recognition.hybrid_recogniser import HybridRecogniser

    recognition = ctx.settings.recognition
    return HybridRecogniser(  # type: ignore[arg-type]
        clip, face, recognition.hybrid_gate, recognition.hybrid_clip_refresh_frames,  # type: ignore[arg-type]
        recognition.awaiting_clip, recognition.awaiting_clip_threshold,
    )


def _tower(clip: Recogniser) -> str:
    """How CLIP's image tower runs (torch, onnx, onnx-int8): int8 may have been refused for fp32."""
    from kiosk.recognition.clip_recogniser import ClipRecogniser

    inner = uncalibrated(clip)
    return inner.clip.runtime if isinstance(inner, ClipRecogniser) else "?"


def _hybrid_reason(hybrid: HybridRecogniser, why: str) -> str:
    clip, face = hybrid.clip.model_version, hybrid.face.model_version
    return f"hybrid recogniser (clip v{clip} on {_tower(hybrid.clip)} + face v{face}, {len(hybrid.people)} people): {why}"


def _intact(ctx: KioskContext, recogniser: str, notes: list[str]) -> tuple[TrainingRun, Path] | None:
    """The newest version whose artifact is intact; a damaged newer one is logged and noted."""
    found = registry(ctx).newest_intact(recogniser)
    if found is None:
        return None
    run, path, refused = found
    if refused:
        # A damaged newest version must not stop the door: the newest intact one stays in force.
        log.warning("%s; falling back to %s model v%s", refused[0], recogniser, run.id)
        notes.append(f"{refused[0]}; fell back to v{run.id}")
    return run, path


def _load_face(ctx: KioskContext, notes: list[str]) -> Recogniser:
    found = _intact(ctx, FACE, notes)
    if found is None:
        raise KioskError("no face model has been trained yet: enrol people, then run `kiosk retrain`")
    run, path = found
    return apply_calibration(ctx, FaceRecogniser.load(path, ctx.embedder, run.id))


def _demanded_clip(ctx: KioskContext, wanted: str, notes: list[str]) -> Recogniser:
    try:
        return _load_clip(ctx, notes)
    except KioskError as exc:
        raise KioskError(f"recognition.recogniser = {wanted!r} needs CLIP, refusing to start: {exc}") from None


def _load_clip(ctx: KioskContext, notes: list[str]) -> Recogniser:
    """The CLIP version in force over the configured weights; KioskError (one line) if unusable."""
    from kiosk.recognition.clip_model import ClipModel
    from kiosk.recognition.clip_onnx import int8_image_tower, onnx_image_tower, towers_folder
    from kiosk.recognition.clip_recogniser import ClipRecogniser, ImageEncoder
    from kiosk.storage.samples import spread_crops

    clip = ClipModel.from_settings(ctx.settings.models)
    found = _intact(ctx, CLIP, notes)
    if found is None:
        raise KioskError("no CLIP model has been trained yet: run `kiosk retrain`")
    run, path = found
    recognition, providers = ctx.settings.recognition, ctx.settings.models.onnx_providers
    encoder: ImageEncoder = clip
    if recognition.clip_runtime != "torch":
        tower = onnx_image_tower(clip, towers_folder(ctx.settings.artifacts_dir), providers)
        if recognition.clip_runtime == "onnx-int8":
            tower = int8_image_tower(tower, lambda: spread_crops(ctx.sessions, ctx.crops), recognition.clip_int8_min_cosine, providers)
        encoder = tower
    return apply_calibration(ctx, ClipRecogniser.load(path, encoder, run.id))

