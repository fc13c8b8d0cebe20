"""`kiosk retrain` and the admin UI's retrain: build new model versions from the stored samples.

Progress is reported through a callback (the CLI prints it, the admin UI shows a bar) and a
threading.Event cancels between steps. The versions in force stay in force until each new
one is complete; a cancel or failure leaves them untouched.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from db.models import AdminAction
from kiosk.context import KioskContext
from kiosk.errors import KioskError
from kiosk.face_recognizer import NAME as FACE, train_face_model
from kiosk.model_registry import ModelRegistry
from kiosk.samples import cached_features, load_samples


class RetrainCancelled(KioskError):
    """The operator cancelled; the model in force is unchanged."""


@dataclass(frozen=True)
class RetrainProgress:
    """One progress report: which recogniser, which stage, and the figures so far."""

    recogniser: str
    stage: str  # "features" | "epoch" | "done" | a short free-form stage name
    done: int = 0
    total: int = 0
    epoch: int | None = None
    loss: float | None = None
    train_accuracy: float | None = None
    val_accuracy: float | None = None
    message: str = ""


@dataclass
class RetrainResult:
    runs: dict[str, int] = field(default_factory=dict)  # recogniser name -> new model version
    metrics: dict[str, dict[str, object]] = field(default_factory=dict)


Progress = Callable[[RetrainProgress], None]


def retrain(
    ctx: KioskContext,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    actor: str = "cli",
) -> RetrainResult:
    """Train every recogniser this site uses from the samples stored now."""
    report = progress or (lambda _p: None)
    stop = cancel or threading.Event()
    registry = ModelRegistry(ctx.sessions, ctx.settings.artifacts_dir)
    samples = load_samples(ctx.sessions, ctx.settings.crops_dir)
    if not samples:
        raise KioskError("nobody is enrolled: run `kiosk enroll NAME PHOTOS...` first")

    def feature_progress(done: int, total: int) -> None:
        report(RetrainProgress(FACE, "features", done, total))
        if stop.is_set():
            raise RetrainCancelled("retrain cancelled; the model in force is unchanged")

    feats = cached_features(ctx.sessions, samples, ctx.embedder.encoder_key, ctx.embedder.embed, progress=feature_progress)
    if stop.is_set():
        raise RetrainCancelled("retrain cancelled; the model in force is unchanged")
    run_id = train_face_model(registry, ctx.embedder, samples, feats, lambda msg: report(RetrainProgress(FACE, "fit", message=msg)))
    result = RetrainResult(runs={FACE: run_id}, metrics={FACE: dict(registry.in_force(FACE).metrics)})  # type: ignore[union-attr]
    report(RetrainProgress(FACE, "done", 1, 1, message=f"face model v{run_id}"))
    with ctx.sessions.begin() as session:
        session.add(AdminAction(actor=actor, action="retrain", subject=None, details={"runs": result.runs}))
    return result
