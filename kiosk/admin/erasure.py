"""Erasing a person (`kiosk identities remove`): no image, feature or template of them is left.

What goes: their samples and cached features (database rows, cascade), their crops, the
thumbnails of their door events, and every model artifact that may hold them, meaning every
version trained since they were enrolled (a face model's template, a CLIP model's fine-tuned
prompt), and the int8 CLIP image towers, whose quantisation was calibrated on stored crops.
The face model is rebuilt at once without them from the cached features of
everyone else (seconds), before the old artifacts go, so the door keeps recognising the
others; other recognisers (CLIP) stay out of force until the next `kiosk retrain`. Deleted
rows are overwritten in the database file (``secure_delete``) and the WAL is checkpointed
and truncated so their old pages do not linger there.

Kept, on purpose: the audit trail (their name on past door events and on the enrol/remove
admin actions), which expires with `privacy.event_retention_days`. Backups taken before the
removal still hold them.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from db.models import Person, TrainingRun, utcnow
from kiosk.admin.enrolment import remove_identity
from kiosk.admin.person_names import person_name
from kiosk.context import KioskContext
from kiosk.errors import KioskError
from kiosk.recognition.clip_onnx import forget_int8_towers
from kiosk.recognition.face_recogniser import train_face_model
from kiosk.recognition.model_registry import ModelRegistry
from kiosk.storage import site_artifacts
from kiosk.storage.samples import cached_features, load_samples
from kiosk.storage.thumbnails import forget_thumbnails

BACKUPS_KEEP = "backups taken before now still hold them (erasure cannot reach them): re-take or delete those backups"


@dataclass
class ErasureReport:
    name: str
    samples: int = 0
    thumbnails: int = 0
    erased_versions: list[str] = field(default_factory=list)  # "face v3", "clip v4"
    rebuilt_face_version: int | None = None
    wal_cleared: bool = False


def forget_person(ctx: KioskContext, name: str, actor: str = "cli", progress: Callable[[str], None] | None = None) -> ErasureReport:
    say = progress or (lambda _m: None)
    name = person_name(name)
    report = ErasureReport(name)
    registry = ModelRegistry(ctx.sessions, ctx.settings.artifacts_dir)
    with registry.exclusive():  # no enrolment refresh may finish after this with them still in it
        _forget(ctx, registry, name, actor, say, report)
    return report


def _forget(ctx: KioskContext, registry: ModelRegistry, name: str, actor: str, say: Callable[[str], None], report: ErasureReport) -> None:
    with ctx.sessions.begin() as session:
        person = session.scalar(select(Person).where(Person.name == name))
        if person is None:
            raise KioskError(f"no enrolled person named {name!r}")
        enrolled_since = person.created_at
        report.thumbnails = forget_thumbnails(session, ctx.settings.home, person.id)
    report.samples = remove_identity(ctx.sessions, ctx.settings.crops_dir, name, actor)
    say(f"erased {report.samples} samples, their crops and features, {report.thumbnails} event thumbnails")
    samples = load_samples(ctx.sessions, ctx.settings.crops_dir)
    try:
        if samples:
            say("rebuilding the face model without them")
            feats = cached_features(ctx.sessions, ctx.crops, samples, ctx.embedder.encoder_key, ctx.embedder.embed)
            report.rebuilt_face_version = train_face_model(registry, ctx.embedder, samples, feats)
    finally:
        # Even if the rebuild failed (no embedder configured, say), the models holding them go:
        # the door then runs an older model without them, or none, and refuses rather than knows them.
        with ctx.sessions.begin() as session:
            report.erased_versions = _erase_artifacts(session, registry, enrolled_since, report.rebuilt_face_version)
        if forget_int8_towers(ctx.settings.artifacts_dir):
            report.erased_versions.append("clip int8 image tower")
        say(f"deleted model artifacts that held them: {', '.join(report.erased_versions) or 'none'}")
        report.wal_cleared = _truncate_wal(ctx)


def _erase_artifacts(session: Session, registry: ModelRegistry, since: datetime, keep: int | None) -> list[str]:
    runs = session.scalars(
        select(TrainingRun).where(TrainingRun.started_at >= since, TrainingRun.artifact_path.is_not(None))
    ).all()
    erased = []
    for run in runs:
        if run.id == keep:
            continue
        shutil.rmtree(registry.folder(run), ignore_errors=True)
        site_artifacts.forget(session, run.id)
        run.status, run.finished_at = "erased", run.finished_at or utcnow()
        run.error = "artifact deleted: it held a person who was erased"
        run.artifact_path = run.artifact_sha256 = None
        erased.append(f"{run.recogniser} v{run.id}")
    return erased


def _truncate_wal(ctx: KioskContext) -> bool:
    """Checkpoint and empty the WAL; False if a reader elsewhere kept it (cleared at a later checkpoint)."""
    if ctx.engine.dialect.name != "sqlite":
        return True
    with ctx.engine.connect() as conn:
        busy = conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)")).first()
    return busy is not None and busy[0] == 0
