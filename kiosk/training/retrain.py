"""`kiosk retrain` and the admin UI's retrain: build new model versions from the stored samples.

CLIP's fine-tuning (kiosk/training/clip_fine_tune.py) is imported only when CLIP is used, so the face-only
path and the commands that import this module do not load torch.

Progress is reported through a callback (the CLI prints it, the admin UI shows a bar) and a
threading.Event cancels between steps. The versions in force stay in force until each new
one is complete; a cancel or failure leaves them untouched.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from db.models import AdminAction
from kiosk.context import KioskContext
from kiosk.errors import KioskError
from kiosk.recognition.clip_recogniser import NAME as CLIP
from kiosk.recognition.face_recogniser import NAME as FACE
from kiosk.recognition.face_recogniser import train_face_model
from kiosk.recognition.model_registry import ModelRegistry
from kiosk.storage.samples import cached_features, load_samples
from kiosk.training.progress import Progress, RetrainCancelled, RetrainProgress, RetrainResult

if TYPE_CHECKING:
    from kiosk.recognition.clip_model import ClipModel

log = logging.getLogger(__name__)


def retrain(
    ctx: KioskContext,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    actor: str = "cli",
) -> RetrainResult:
    """Train every recogniser this site uses from the samples stored now.

    The face recogniser is trained unless the site runs CLIP alone; CLIP's text tower is
    fine-tuned when the configuration uses CLIP (clip, hybrid, or auto with loadable weights).
    CLIP is loaded first, so a configuration that demands it fails before anything changes.
    """
    report = progress or (lambda _p: None)
    stop = cancel or threading.Event()
    registry = ModelRegistry(ctx.sessions, ctx.settings.artifacts_dir)
    if abandoned := registry.abandon_interrupted():  # a retrain killed mid-way leaves its row 'running'
        log.warning("%d interrupted retrain(s) marked as such and their half-made files removed", abandoned)
    samples = load_samples(ctx.sessions, ctx.settings.crops_dir)
    if not samples:
        raise KioskError("nobody is enrolled: run `kiosk enroll NAME PHOTOS...` first")
    wanted = ctx.settings.recognition.recogniser
    clip = _clip_in_use(ctx, report)

    def check() -> None:
        if stop.is_set():
            raise RetrainCancelled("retrain cancelled; the model in force is unchanged")

    def features_reporter(name: str) -> Callable[[int, int], None]:
        def feature_progress(done: int, total: int) -> None:
            report(RetrainProgress(name, "features", done, total))
            check()

        return feature_progress

    result = RetrainResult()
    if wanted != CLIP:
        with registry.exclusive():  # the samples as of now, in order with enrolment refreshes
            face_samples = load_samples(ctx.sessions, ctx.settings.crops_dir)
            feats = cached_features(ctx.sessions, ctx.crops, face_samples, ctx.embedder.encoder_key, ctx.embedder.embed, progress=features_reporter(FACE))
            check()
            run_id = train_face_model(registry, ctx.embedder, face_samples, feats, lambda msg: report(RetrainProgress(FACE, "fit", message=msg)))
        result.runs[FACE] = run_id
        result.metrics[FACE] = dict(registry.in_force(FACE).metrics)  # type: ignore[union-attr]
        report(RetrainProgress(FACE, "done", 1, 1, message=f"face model v{run_id}"))
    if clip is not None:
        from kiosk.training.clip_fine_tune import train_clip_model

        feats = cached_features(ctx.sessions, ctx.crops, samples, clip.encoder_key, clip.encode_images, progress=features_reporter(CLIP))
        check()
        run_id = train_clip_model(
            registry, clip, samples, feats, ctx.settings.training, ctx.settings.recognition.prompt_template,
            report, stop.is_set,
        )
        result.runs[CLIP] = run_id
        result.metrics[CLIP] = dict(registry.in_force(CLIP).metrics)  # type: ignore[union-attr]
    with ctx.sessions.begin() as session:
        session.add(AdminAction(actor=actor, action="retrain", subject=None, details={"runs": result.runs}))
    return result


def _clip_in_use(ctx: KioskContext, report: Progress) -> ClipModel | None:
    """The CLIP model to fine-tune, None when the site does without it; KioskError if demanded but unusable."""
    wanted = ctx.settings.recognition.recogniser
    if wanted == FACE:
        return None
    from kiosk.recognition.clip_model import ClipModel, ClipUnavailable

    try:
        return ClipModel.from_settings(ctx.settings.models)
    except ClipUnavailable as exc:
        if wanted != "auto":
            raise KioskError(f"recognition.recogniser = {wanted!r} needs CLIP, but {exc}") from None
        report(RetrainProgress(CLIP, "skipped", message=f"CLIP unavailable ({exc}): training the face recogniser only"))
        return None
