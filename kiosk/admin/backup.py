"""`kiosk backup` and `kiosk restore`: a consistent copy of a running kiosk, and bringing it back.

The database is copied with SQLite's online backup API in one step, which reads one
consistent snapshot while the door keeps writing (WAL readers do not block the writer). The
files that snapshot refers to, face crops, event thumbnails and the model versions in force
or kept, are copied next, as stored (encrypted crops stay encrypted; the key is not part of
the backup and must be kept separately). ``manifest.json`` lists every file with its sha256,
and restore refuses a backup that does not match it.

Restore refuses a data directory whose door service is running, and one that already holds
people or events unless forced; it checks the copy (integrity_check) before swapping it in,
points the model versions at their new folder, migrates, and verifies the audit chain.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy.engine import make_url

from db.audit_chain import ChainReport, verify_all
from kiosk.config import Settings
from kiosk.context import KioskContext
from kiosk.door.status import read_status
from kiosk.errors import KioskError
from kiosk.processes import process_alive
from kiosk.storage.checksums import file_sha256
from kiosk.storage.crop_store import private_dirs

MANIFEST = "manifest.json"
DB_NAME = "kiosk.db"
STALE_STATUS_S = 10.0  # the service rewrites status.json about every second


@dataclass
class BackupReport:
    path: Path
    files: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # files the snapshot names but the disk no longer has


@dataclass
class RestoreReport:
    counts: dict[str, int]
    chains: list[ChainReport]


def sqlite_path(settings: Settings) -> Path:
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        raise KioskError(f"backup and restore handle SQLite databases only; back up {url.get_backend_name()} with its own tools")
    return Path(url.database)


def backup(settings: Settings, dest: Path, progress: Callable[[str], None] | None = None) -> BackupReport:
    say = progress or (lambda _m: None)
    source = sqlite_path(settings)
    if not source.is_file():
        raise KioskError(f"no database to back up at {source}")
    _refuse_inside_home(settings, dest)
    if dest.exists() and any(dest.iterdir()):
        raise KioskError(f"backup folder is not empty: {dest}")
    private_dirs(dest)
    os.chmod(dest, 0o700)
    target = dest / DB_NAME
    src = sqlite3.connect(source, timeout=settings.database.busy_timeout_ms / 1000)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)  # all pages in one step: one consistent snapshot
        if dst.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise KioskError(f"the database copy failed its integrity check; the source may be damaged: {source}")
        counts = _counts(dst)
        crops = [row[0] for row in dst.execute("SELECT crop_path FROM face_samples")]
        thumbs = [row[0] for row in dst.execute("SELECT thumbnail_path FROM access_events WHERE thumbnail_path IS NOT NULL")]
        models = [settings.artifacts_dir / Path(row[0]).name for row in dst.execute("SELECT artifact_path FROM training_runs WHERE status = 'complete' AND artifact_path IS NOT NULL")]
    finally:
        src.close()
        dst.close()
    os.chmod(target, 0o600)
    say(f"database copied: {counts['people']} people, {counts['samples']} samples, {counts['events']} events")
    report = BackupReport(dest, counts=counts)
    _copy_files(settings.crops_dir, dest / "crops", crops, report)
    _copy_files(settings.home, dest, thumbs, report)
    for folder in models:
        files = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
        if not files:
            report.missing.append(str(folder))
        _copy_files(folder, dest / "models" / folder.name, files, report)
    say(f"{len(crops)} crops, {len(thumbs)} thumbnails, {len(models)} model versions copied")
    manifest = {
        "created": datetime.now(timezone.utc).isoformat(),
        "source_home": str(settings.home),
        "counts": counts,
        "missing": report.missing,
        "files": {p.relative_to(dest).as_posix(): file_sha256(p) for p in sorted(dest.rglob("*")) if p.is_file()},
    }
    report.files = len(manifest["files"])
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return report


def _refuse_inside_home(settings: Settings, dest: Path) -> None:
    """A backup in the data directory shares its disk, and erasure never looks there: refuse it."""
    home, target = settings.home.resolve(), dest.resolve()
    if target == home or home in target.parents:
        raise KioskError(
            f"backup folder {dest} is inside the data directory {settings.home}: erasing a person would leave "
            "them in it and one failed disk loses both; back up to a folder outside it"
        )


def restore(settings: Settings, src: Path, force: bool = False, progress: Callable[[str], None] | None = None) -> RestoreReport:
    say = progress or (lambda _m: None)
    manifest = _checked_manifest(src)
    home = settings.home
    target = sqlite_path(settings)
    status = read_status(home)
    if status is not None and status.live(fresh_seconds=STALE_STATUS_S) and process_alive(status.pid):
        raise KioskError(f"the door service is running on {home} (pid {status.pid}): stop it before restoring")
    if target.is_file() and not force:
        counts = _counts_of(target)
        if counts["people"] or counts["events"]:
            raise KioskError(f"{home} already holds {counts['people']} people and {counts['events']} events: use --force to replace them")
    private_dirs(home)
    staging = home / ".restoring"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(src, staging, ignore=shutil.ignore_patterns(MANIFEST))
    with sqlite3.connect(staging / DB_NAME) as conn:
        if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise KioskError(f"the backup's database fails its integrity check: {src / DB_NAME}")
        for run_id, path in conn.execute("SELECT id, artifact_path FROM training_runs WHERE artifact_path IS NOT NULL").fetchall():
            conn.execute("UPDATE training_runs SET artifact_path = ? WHERE id = ?", (str(settings.artifacts_dir / Path(path).name), run_id))
    conn.close()
    say("backup checked; replacing the data directory's database, crops, thumbnails and models")
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    os.replace(staging / DB_NAME, target)
    for name, dest in (("crops", settings.crops_dir), ("models", settings.artifacts_dir), ("thumbnails", home / "thumbnails")):
        shutil.rmtree(dest, ignore_errors=True)
        if (staging / name).is_dir():
            os.replace(staging / name, dest)
    shutil.rmtree(staging, ignore_errors=True)
    ctx = KioskContext(settings)
    ctx.engine  # migrates a backup taken under an older schema
    chains = verify_all(ctx.sessions)
    ctx.engine.dispose()
    counts = _counts_of(target)
    say(f"restored {counts['people']} people, {counts['samples']} samples, {counts['events']} events from {manifest['created']}")
    return RestoreReport(counts, chains)


def _checked_manifest(src: Path) -> dict[str, object]:
    try:
        manifest = json.loads((src / MANIFEST).read_text())
    except (OSError, ValueError):
        raise KioskError(f"not a kiosk backup (no readable {MANIFEST}): {src}") from None
    for rel, digest in manifest["files"].items():
        path = src / rel
        if not path.is_file():
            raise KioskError(f"backup damaged: {rel} is missing")
        if file_sha256(path) != digest:
            raise KioskError(f"backup damaged: {rel} does not match its checksum")
    return manifest


def _copy_files(root: Path, dest: Path, relative: list[str], report: BackupReport) -> None:
    for rel in relative:
        src = root / rel
        out = dest / rel
        private_dirs(out.parent)
        try:
            shutil.copyfile(src, out)
        except FileNotFoundError:  # removed since the snapshot (a person erased mid-backup)
            report.missing.append(str(src))


def _counts_of(path: Path) -> dict[str, int]:
    """Counts in a database file; a file never migrated (no tables yet) counts as empty."""
    conn = sqlite3.connect(path)
    try:
        return _counts(conn)
    except sqlite3.OperationalError:
        return {"people": 0, "events": 0}
    finally:
        conn.close()


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    def one(sql: str) -> int:
        return int(conn.execute(sql).fetchone()[0])

    return {
        "people": one("SELECT count(*) FROM people"),
        "samples": one("SELECT count(*) FROM face_samples"),
        "events": one("SELECT count(*) FROM access_events"),
        "admin_actions": one("SELECT count(*) FROM admin_actions"),
        "model_versions": one("SELECT count(*) FROM training_runs WHERE status = 'complete'"),
    }


