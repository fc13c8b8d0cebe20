"""Versioned model artifacts: one TrainingRun row and one folder per version.

A version is trained into a staging folder and becomes the one in force only when it is
complete: the folder is renamed into place, hashed, and the row marked complete in one
commit. A crash, failure or cancel before that leaves the version in force untouched.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from db.models import TrainingRun, utcnow
from kiosk.errors import KioskError
from kiosk.processes import owner, owner_gone
from kiosk.storage import site_artifacts


class ModelRegistry:
    def __init__(self, sessions: sessionmaker[Session], artifacts_dir: Path):
        self.sessions = sessions
        self.artifacts_dir = artifacts_dir

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """One model build from the samples at a time on this data directory (a file lock).

        A build reads the samples after taking it, so versions are numbered in the order of
        the samples they saw: an enrolment's refresh can never be overtaken by an older
        snapshot finishing later, and an erasure's rebuild never by a build that still holds
        the person erased.
        """
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        with (self.artifacts_dir / ".build.lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def start(self, recogniser: str, params: dict[str, Any]) -> int:
        with self.sessions.begin() as session:
            run = TrainingRun(recogniser=recogniser, status="running", params={**params, "owner": owner()}, metrics={"epochs": []})
            session.add(run)
            session.flush()
            return run.id

    def staging_dir(self, run_id: int) -> Path:
        path = self.artifacts_dir / f".staging-{run_id}"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True, mode=0o700)
        return path

    def record_epoch(self, run_id: int, figures: dict[str, Any]) -> None:
        """Append one epoch's figures to the run row as training goes, for progress and audit."""
        with self.sessions.begin() as session:
            run = session.get_one(TrainingRun, run_id)
            run.metrics = {**run.metrics, "epochs": [*run.metrics.get("epochs", []), figures]}

    def complete(self, run_id: int, staging: Path, metrics: dict[str, Any]) -> Path:
        with self.sessions() as session:
            recogniser = session.get_one(TrainingRun, run_id).recogniser
        final = self.artifacts_dir / f"{recogniser}-v{run_id}"
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        digest = artifact_digest(final)
        with self.sessions.begin() as session:
            run = session.get_one(TrainingRun, run_id)
            run.status = "complete"
            run.finished_at = utcnow()
            run.metrics = {**run.metrics, **metrics}
            run.artifact_path = str(final)
            run.artifact_sha256 = digest
            site_artifacts.publish(session, run_id, final)  # a site database: doors fetch it from there
        return final

    def fail(self, run_id: int, error: str, status: str = "failed") -> None:
        shutil.rmtree(self.artifacts_dir / f".staging-{run_id}", ignore_errors=True)
        with self.sessions.begin() as session:
            run = session.get_one(TrainingRun, run_id)
            run.status, run.error, run.finished_at = status, error, utcnow()

    def abandon_interrupted(self) -> int:
        """Runs still 'running' from a process that died are marked so; their staging is removed.

        A run whose process is still alive (a retrain under way in the admin app) is left alone.
        """
        with self.sessions.begin() as session:
            running = session.execute(select(TrainingRun.id, TrainingRun.params).where(TrainingRun.status == "running")).all()
            ids = [run_id for run_id, params in running if owner_gone((params or {}).get("owner"))]
            session.execute(
                update(TrainingRun).where(TrainingRun.id.in_(ids)).values(status="interrupted", finished_at=utcnow())
            )
        for run_id in ids:
            shutil.rmtree(self.artifacts_dir / f".staging-{run_id}", ignore_errors=True)
            # Killed inside complete(): the folder may already be renamed into place.
            for folder in self.artifacts_dir.glob(f"*-v{run_id}"):
                shutil.rmtree(folder, ignore_errors=True)
        return len(ids)

    def in_force(self, recogniser: str) -> TrainingRun | None:
        """The newest complete version of this recogniser."""
        with self.sessions() as session:
            return session.scalars(
                select(TrainingRun)
                .where(TrainingRun.recogniser == recogniser, TrainingRun.status == "complete")
                .order_by(TrainingRun.id.desc())
                .limit(1)
            ).first()

    def newest_intact(self, recogniser: str) -> tuple[TrainingRun, Path, list[str]] | None:
        """The newest complete version whose artifact still verifies, and why any newer ones were refused."""
        with self.sessions() as session:
            runs = session.scalars(
                select(TrainingRun)
                .where(TrainingRun.recogniser == recogniser, TrainingRun.status == "complete")
                .order_by(TrainingRun.id.desc())
            ).all()
        refused: list[str] = []
        for run in runs:
            try:
                return run, self.verified_path(run), refused
            except KioskError as exc:
                refused.append(str(exc))
        if refused:
            raise KioskError(f"no intact {recogniser} model: {refused[0]}" + (f" (and {len(refused) - 1} older)" if len(refused) > 1 else ""))
        return None

    def folder(self, run: TrainingRun) -> Path:
        """A version's folder under this registry's artifacts directory, found by name, so a data
        directory that was copied or restored elsewhere uses its own models, not the original's."""
        return self.artifacts_dir / Path(run.artifact_path or "").name

    def verified_path(self, run: TrainingRun) -> Path:
        """The artifact folder, refused unless its contents still hash to what was recorded."""
        path = self.folder(run)
        if not path.is_dir():
            raise KioskError(f"model version {run.id} ({run.recogniser}): artifact folder is missing: {path}")
        if artifact_digest(path) != run.artifact_sha256:
            raise KioskError(f"model version {run.id} ({run.recogniser}): artifact is corrupt (checksum mismatch): {path}")
        return path


def artifact_digest(folder: Path) -> str:
    """sha256 over every file's relative name and bytes, in name order."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
