"""The door's replica of the site: what it needs to decide, copied into its own SQLite.

The door decides from its local database only, exactly as a single door does: people and
their validity windows, their cards (a door on an access panel sends the granted person's),
the model version in force per recogniser (rows and artifact files), the calibrations of those
versions, the liveness calibrations (kiosk/liveness/setup.py picks the newest for the door's
models) and the admin's threshold override (kiosk/door/threshold_override.py reads it there,
over the door's own file). `sync` reads one consistent snapshot of the site
(REPEATABLE READ), writes any missing artifact folder first, then replaces the replicated rows
and the replica's version in one SQLite transaction. The door service's hot reload then swaps
the new rules and model in between two frames, as after a local retrain.

Erasure reaches the door here: a person gone from the site is deleted from the replica, with
their card, the thumbnails of their events at this door and any crops of them kept here, and model
versions the site no longer holds (an erasure deletes those that held the person) are deleted
with their folders. `SyncReport.erasure_verified` says that nothing of them was found after.

`ReplicaFollower` keeps the replica current: it LISTENs on ``kiosk_site`` (the site's trigger
NOTIFYs on every change to a replicated table), checks the version every ``site.poll_seconds``
if nothing came, and catches up on start and after every reconnect.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from db.models import (
    AccessEvent,
    Calibration,
    Credential,
    FaceSample,
    LivenessCalibration,
    Person,
    SiteState,
    ThresholdOverride,
    TrainingRun,
)
from kiosk.config import Settings
from kiosk.errors import KioskError
from kiosk.recognition.model_registry import artifact_digest
from kiosk.site.connection import retry_if_dropped
from kiosk.storage import site_artifacts
from kiosk.storage.crop_store import remove_person_crops
from kiosk.storage.thumbnails import forget_thumbnails

log = logging.getLogger(__name__)

CHANNEL = "kiosk_site"
PERSON_COLUMNS = ("id", "name", "created_at", "valid_from", "valid_until", "weekly_windows")
RUN_COLUMNS = ("id", "recogniser", "status", "started_at", "finished_at", "params", "metrics", "artifact_path", "artifact_sha256", "error")
CALIBRATION_COLUMNS = ("id", "time", "training_run_id", "recogniser", "method", "params", "threshold", "metrics")
CREDENTIAL_COLUMNS = ("id", "person_id", "card", "facility", "number", "created_at")
OVERRIDE_COLUMNS = ("id", "threshold", "set_by", "set_at")
LIVENESS_COLUMNS = ("id", "time", "detector", "target_bpcer", "threshold", "metrics")


@dataclass
class SyncReport:
    version: int
    changed: bool = False
    people: int = 0
    erased_people: list[int] = field(default_factory=list)
    thumbnails_erased: int = 0
    fetched_versions: list[int] = field(default_factory=list)
    dropped_versions: list[int] = field(default_factory=list)
    erasure_verified: bool = True


def local_version(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(SiteState.version).where(SiteState.id == 1)) or 0


def site_version(conn: Connection) -> int:
    return conn.scalar(select(SiteState.version).where(SiteState.id == 1)) or 0


def sync(site: Engine, sessions: sessionmaker[Session], settings: Settings) -> SyncReport:
    """Bring the replica to the site's current version (nothing is written when it already is)."""
    held = local_version(sessions)
    with site.connect() as raw:
        conn = raw.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            version = site_version(conn)
            if version == held:
                return SyncReport(version)
            people = _rows(conn, Person, PERSON_COLUMNS)
            runs = _versions_in_force(conn)
            calibrations = [dict(r._mapping) for r in conn.execute(
                select(*(getattr(Calibration, c) for c in CALIBRATION_COLUMNS)).where(Calibration.training_run_id.in_([r["id"] for r in runs]))
            )]
            credentials = _rows(conn, Credential, CREDENTIAL_COLUMNS)
            overrides = _rows(conn, ThresholdOverride, OVERRIDE_COLUMNS)
            liveness = _rows(conn, LivenessCalibration, LIVENESS_COLUMNS)
            fetched = _fetch_missing(conn, sessions, settings.artifacts_dir, runs)
    report = SyncReport(version, changed=True, people=len(people), fetched_versions=fetched)
    dropped_folders: list[Path] = []
    with sessions.begin() as session:
        central_ids = {p["id"] for p in people}
        report.erased_people = sorted(set(session.scalars(select(Person.id))) - central_ids)
        for person_id in report.erased_people:
            report.thumbnails_erased += forget_thumbnails(session, settings.home, person_id)
        # Replaced whole, not upserted: a card may have moved between people (unique per site).
        session.execute(delete(Credential))
        session.execute(delete(ThresholdOverride))
        session.execute(delete(LivenessCalibration))
        session.execute(delete(FaceSample).where(FaceSample.person_id.in_(report.erased_people)))
        session.execute(delete(Person).where(Person.id.in_(report.erased_people)))
        if people:
            stmt = sqlite_insert(Person).values(people)
            session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={c: stmt.excluded[c] for c in PERSON_COLUMNS[1:]}))
        run_ids = {r["id"] for r in runs}
        calibration_ids = {c["id"] for c in calibrations}
        session.execute(delete(Calibration).where(Calibration.id.not_in(calibration_ids)))
        for run in session.scalars(select(TrainingRun).where(TrainingRun.id.not_in(run_ids))):
            report.dropped_versions.append(run.id)
            if run.artifact_path:
                dropped_folders.append(settings.artifacts_dir / Path(run.artifact_path).name)
        session.execute(delete(TrainingRun).where(TrainingRun.id.not_in(run_ids)))
        _upsert(session, TrainingRun, runs, RUN_COLUMNS)
        _upsert(session, Calibration, calibrations, CALIBRATION_COLUMNS)
        for model, rows in ((Credential, credentials), (ThresholdOverride, overrides), (LivenessCalibration, liveness)):
            if rows:
                session.execute(insert(model), rows)
        session.execute(update(SiteState).where(SiteState.id == 1).values(version=version))
    for folder in dropped_folders:
        shutil.rmtree(folder, ignore_errors=True)
    for person_id in report.erased_people:
        remove_person_crops(settings.crops_dir, person_id)
    report.erasure_verified = _nothing_left(sessions, settings, report.erased_people, dropped_folders)
    if report.erased_people:
        log.warning("site: %d people erased from this door's replica (%d thumbnails); verified: %s",
                    len(report.erased_people), report.thumbnails_erased, report.erasure_verified)
    return report


def _versions_in_force(conn: Connection) -> list[dict[str, Any]]:
    """The newest complete version of each recogniser, the ones a door loads."""
    newest = (
        select(TrainingRun.recogniser, func.max(TrainingRun.id).label("id"))
        .where(TrainingRun.status == "complete", TrainingRun.artifact_sha256.is_not(None))
        .group_by(TrainingRun.recogniser)
        .subquery()
    )
    rows = conn.execute(select(*(getattr(TrainingRun, c) for c in RUN_COLUMNS)).join(newest, newest.c.id == TrainingRun.id))
    return [dict(r._mapping) for r in rows]


def _fetch_missing(conn: Connection, sessions: sessionmaker[Session], artifacts_dir: Path, runs: list[dict[str, Any]]) -> list[int]:
    """Write the folders of versions this door lacks; each is checked against its recorded digest."""
    with sessions() as session:
        held = dict(tuple(r) for r in session.execute(select(TrainingRun.id, TrainingRun.artifact_sha256)).all())
    fetched = []
    for run in runs:
        folder = artifacts_dir / Path(run["artifact_path"]).name
        if held.get(run["id"]) == run["artifact_sha256"] and folder.is_dir():
            continue
        staging = artifacts_dir / f".site-{run['id']}"
        site_artifacts.fetch(conn, run["id"], staging)
        if artifact_digest(staging) != run["artifact_sha256"]:
            shutil.rmtree(staging, ignore_errors=True)
            raise KioskError(f"model version {run['id']} from the site does not match its checksum")
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
        fetched.append(run["id"])
    return fetched


def _rows(conn: Connection, model: type[Any], columns: tuple[str, ...]) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(select(*(getattr(model, c) for c in columns)))]


def _upsert(session: Session, model: type[Any], rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    if rows:
        stmt = sqlite_insert(model).values(rows)
        session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={c: stmt.excluded[c] for c in columns[1:]}))


def _nothing_left(sessions: sessionmaker[Session], settings: Settings, people: list[int], folders: list[Path]) -> bool:
    """After an erasure: no row, card, crop, event thumbnail or model folder of theirs remains here."""
    if not people and not folders:
        return True
    with sessions() as session:
        rows = session.scalar(select(func.count(Person.id)).where(Person.id.in_(people)))
        rows += session.scalar(select(func.count(FaceSample.id)).where(FaceSample.person_id.in_(people)))
        rows += session.scalar(select(func.count(Credential.id)).where(Credential.person_id.in_(people)))
        rows += session.scalar(select(func.count(AccessEvent.id)).where(AccessEvent.person_id.in_(people)))
    crops = any((settings.crops_dir / str(p)).exists() for p in people)
    return rows == 0 and not crops and not any(f.exists() for f in folders)


def listen_conninfo(url: str) -> str:
    """The site URL as libpq takes it (TLS and other query options kept)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class ReplicaFollower:
    """Background: LISTEN for site changes, poll as the fallback, catch up on every (re)connect."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session], site: Engine, url: str,
                 on_sync: Callable[[SyncReport], None] | None = None):
        self.settings = settings
        self.sessions = sessions
        self.site = site
        self.url = url
        self.on_sync = on_sync or (lambda _r: None)
        self.connected = threading.Event()
        self.syncs = 0

    def run(self, stop: threading.Event) -> None:
        site = self.settings.site
        while not stop.is_set():
            try:
                with psycopg.connect(listen_conninfo(self.url), autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._sync()  # catch up: start, or back after an outage
                    self.connected.set()
                    since_sync = 0.0
                    while not stop.is_set():
                        wait = min(1.0, site.poll_seconds)
                        heard = list(conn.notifies(timeout=wait, stop_after=1))
                        since_sync += wait
                        if heard or since_sync >= site.poll_seconds:
                            since_sync = 0.0
                            self._sync()
            except (psycopg.Error, SQLAlchemyError, OSError, KioskError) as exc:
                if self.connected.is_set():
                    log.warning("site database unreachable, the door keeps deciding from its replica: %s", _first_line(exc))
                self.connected.clear()
                stop.wait(site.retry_seconds)

    def _sync(self) -> None:
        report = retry_if_dropped(lambda: sync(self.site, self.sessions, self.settings))
        self.syncs += 1
        self.on_sync(report)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
