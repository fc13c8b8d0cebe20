"""Backup while the door writes, restore elsewhere, and the refusals that protect a live kiosk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, copy_home, dev_people, make_settings, run_kiosk
from small_home import build_small_home

from db.audit_chain import verify_all
from kiosk.admin.backup import restore
from kiosk.admin.enrolment import list_identities
from kiosk.context import KioskContext
from kiosk.door.status import DoorStatus, write_status
from kiosk.errors import KioskError
from kiosk.recognition.face_embedder import FaceEmbedder
from kiosk.recognition.selection import load_recogniser
from kiosk.vision.face_detection import FaceDetector

# The door service's part in this test: one event per transaction until told to stop.
DOOR = r"""
import sys, time
from pathlib import Path
from db.models import AccessEvent
from db.session import make_engine, session_factory
sessions = session_factory(make_engine(f"sqlite:///{sys.argv[1]}"))
stop, n = Path(sys.argv[2]), 0
while not stop.exists():
    with sessions.begin() as s:
        s.add(AccessEvent(door="front", person_name=None, granted=False, probability=0.1, reason="unknown face"))
    n += 1
    print(n, flush=True)
"""


@pytest.fixture(scope="module")
def small_home(tmp_path_factory: pytest.TempPathFactory, detector: FaceDetector, embedder: FaceEmbedder) -> Path:
    return build_small_home(tmp_path_factory.mktemp("backup") / "home", detector, embedder)


@pytest.fixture(scope="module")
def backed_up(small_home: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A backup taken by `kiosk backup` while another process keeps writing door events."""
    work = tmp_path_factory.mktemp("backup-run")
    home = copy_home(small_home, work / "home")
    stop = work / "stop"
    door = subprocess.Popen([sys.executable, "-c", DOOR, str(home / "kiosk.db"), str(stop)], env={"PYTHONPATH": str(REPO)}, cwd=REPO, stdout=subprocess.PIPE, text=True)
    first = door.stdout.readline()  # the door is writing before the backup starts
    proc = run_kiosk(["backup", str(work / "backup")], home)
    stop.touch()
    out, _ = door.communicate(timeout=60)
    assert first.strip() and proc.returncode == 0, proc.stderr
    assert int(out.split()[-1]) > json.loads((work / "backup" / "manifest.json").read_text())["counts"]["events"]
    return home, work / "backup"


def test_restore_brings_back_a_working_kiosk(backed_up: tuple[Path, Path], tmp_path: Path, embedder: FaceEmbedder) -> None:
    _, backup = backed_up
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["counts"]["events"] >= 1 and manifest["missing"] == []
    assert stat_private(backup / "kiosk.db")
    home = tmp_path / "restored"
    proc = run_kiosk(["restore", str(backup)], home)
    assert proc.returncode == 0, proc.stderr
    assert "access_events: " in proc.stdout and "chain verified" in proc.stdout

    ctx = KioskContext(make_settings(home))
    ctx.__dict__["embedder"] = embedder
    assert [p["name"] for p in list_identities(ctx.sessions)] == [p.name for p in dev_people()[:3]]
    assert all(r.ok for r in verify_all(ctx.sessions))
    assert next(r for r in verify_all(ctx.sessions) if r.chain == "access_events").rows == manifest["counts"]["events"]
    selection = load_recogniser(ctx)  # the model loads from the restored home, checksum verified
    assert sorted(selection.recogniser.people) == [p.name for p in dev_people()[:3]]
    assert str(home) in str(next(home.joinpath("models").iterdir()))


def stat_private(path: Path) -> bool:
    return not (os.stat(path).st_mode & 0o077)


def test_restore_refuses_a_live_or_full_home_and_a_damaged_backup(backed_up: tuple[Path, Path], tmp_path: Path) -> None:
    source_home, backup = backed_up
    settings = make_settings(copy_home(source_home, tmp_path / "home"))
    with pytest.raises(KioskError, match="already holds 3 people and .* events: use --force"):
        restore(settings, backup)
    write_status(settings.home, DoorStatus("front", "closed", "ok", 10.0, "face", 1, 0.8, time.time(), os.getpid()))
    with pytest.raises(KioskError, match="door service is running"):
        restore(settings, backup, force=True)
    (settings.home / "status.json").unlink()
    assert all(c.ok for c in restore(settings, backup, force=True).chains)

    damaged = copy_home(backup, tmp_path / "damaged")
    crop = next((damaged / "crops").rglob("*.png"))
    data = bytearray(crop.read_bytes())
    data[len(data) // 2] ^= 0xFF
    crop.write_bytes(bytes(data))
    with pytest.raises(KioskError, match=r"backup damaged: crops/.*\.png does not match its checksum"):
        restore(make_settings(tmp_path / "empty"), damaged)


# --- hardening (issue 13, item 10): a backup inside the data directory -----------------------


def test_a_backup_inside_the_data_directory_is_refused_and_erasure_says_backups_keep_the_person(small_home: Path, tmp_path: Path) -> None:
    home = copy_home(small_home, tmp_path / "home")
    (tmp_path / "link").symlink_to(home)
    for inside in (home / "backups" / "monday", tmp_path / "link" / "b", home):
        proc = run_kiosk(["backup", str(inside)], home)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "inside the data directory" in proc.stderr, proc.stderr
    assert not (home / "backups").exists() and not (home / "b").exists()
    assert run_kiosk(["backup", str(tmp_path / "outside")], home).returncode == 0
    gone = run_kiosk(["identities", "remove", dev_people()[0].name], home)
    assert gone.returncode == 0, gone.stderr
    assert "backups taken before now still hold them" in gone.stdout
