"""The face model refreshed after enrolment changes, so a person enrolled is let in at once.

Enrolment (the CLI, the admin app from files or from the camera, a batch from a folder) and
removals end here instead of waiting for `kiosk retrain`. Only the new samples are encoded
(the rest come from the feature cache); the templates and the calibration mapping
(P(true | cosine, margin)) are rebuilt from the cached features in one vectorised pass; the
result is a new face model version, written through the model registry (complete or
nothing) and so in force the moment it completes. The running door sees the newer version
at its next reload check and swaps it in without stopping.

CLIP cannot be refreshed this way (its text tower is fine-tuned): a person enrolled after
the CLIP version in force waits for the next full retrain (see kiosk/training/catch_up.py
and recognition.awaiting_clip for what the door does meanwhile).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from db.models import AdminAction
from kiosk.context import KioskContext
from kiosk.recognition.face_recogniser import NAME as FACE
from kiosk.recognition.face_recogniser import train_face_model
from kiosk.recognition.model_registry import ModelRegistry
from kiosk.storage.samples import cached_features, load_samples

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refresh:
    """What one refresh did, for the command's output and the admin action."""

    version: int | None  # the face model version now in force; None when nobody is enrolled
    people: int
    samples: int
    encoded: int  # samples whose features were computed now (the rest were cached)
    seconds: float

    def describe(self) -> str:
        if self.version is None:
            return "face model: nobody enrolled, no model in force"
        return f"face model v{self.version} in force ({self.people} people, {self.samples} samples, {self.encoded} newly encoded)"


def face_in_use(ctx: KioskContext) -> bool:
    """Every configuration but CLIP alone decides with (or verifies by) the face recogniser."""
    return ctx.settings.recognition.recogniser != "clip"


def refresh_face_model(
    ctx: KioskContext, cause: str, actor: str = "cli", progress: Callable[[str], None] | None = None
) -> Refresh | None:
    """A new face model version from the samples stored now; None when the site runs CLIP alone.

    ``cause`` says what changed ("enrol Ann", "enrol batch of 12", ...) for the admin action.
    """
    if not face_in_use(ctx):
        return None
    say = progress or (lambda _m: None)
    started = time.perf_counter()
    registry = ModelRegistry(ctx.sessions, ctx.settings.artifacts_dir)
    encoded = 0

    def count(done: int, _total: int) -> None:
        nonlocal encoded
        encoded = done

    with registry.exclusive():
        samples = load_samples(ctx.sessions, ctx.settings.crops_dir)
        version = None
        if samples:
            feats = cached_features(ctx.sessions, ctx.crops, samples, ctx.embedder.encoder_key, ctx.embedder.embed, progress=count)
            version = train_face_model(registry, ctx.embedder, samples, feats, say)
    result = Refresh(version, len({s.person for s in samples}), len(samples), encoded, time.perf_counter() - started)
    with ctx.sessions.begin() as session:
        session.add(AdminAction(
            actor=actor, action="refresh", subject=None,
            details={"cause": cause, "recogniser": FACE, "version": version, "samples": len(samples), "encoded": encoded},
        ))
    log.info("%s after %s in %.1f s", result.describe(), cause, result.seconds)
    say(result.describe())
    return result


def refresh_after_enrolment(ctx: KioskContext, people: list[str], actor: str = "cli", progress: Callable[[str], None] | None = None) -> Refresh | None:
    """One refresh for the people who just had samples stored (one or a whole batch); None if nobody did."""
    if not people:
        return None
    cause = f"enrol {people[0]}" if len(people) == 1 else f"enrol batch of {len(people)} people"
    return refresh_face_model(ctx, cause, actor, progress)
