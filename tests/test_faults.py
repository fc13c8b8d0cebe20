"""Faults survived: SIGKILL mid-write, a full disk, a corrupt model file, a locked database."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, copy_home, dev_people, kiosk_env, make_settings, photos, run_kiosk
from small_home import build_small_home
from sqlalchemy import func, select

from db.audit_chain import verify_all
from db.models import AccessEvent, FaceSample, TrainingRun
from db.session import make_engine, session_factory
from kiosk.admin.enrolment import Enroller
from kiosk.context import KioskContext
from kiosk.errors import KioskError, StorageFull
from kiosk.recognition.face_embedder import FaceEmbedder
from kiosk.recognition.model_registry import ModelRegistry
from kiosk.recognition.selection import load_recogniser
from kiosk.training.retrain import retrain
from kiosk.vision.face_detection import FaceDetector

# The door loop's part: one event per transaction, its number printed only after the commit.
EVENTS = r"""
import sys
from db.models import AccessEvent
from db.session import make_engine, session_factory
sessions = session_factory(make_engine(f"sqlite:///{sys.argv[1]}"))
n = 0
while True:
    with sessions.begin() as s:
        s.add(AccessEvent(door="front", person_name=f"P{n}", granted=n % 3 == 0, probability=0.9, reason="test"))
    n += 1
    print(n, flush=True)
"""

# `kiosk retrain`, stopped inside ModelRegistry.complete: after the new folder is renamed into
# place, before its row is marked complete (the worst moment), so the parent can SIGKILL it there.
RETRAIN = r"""
import sys, time
from pathlib import Path
import kiosk.recognition.model_registry as registry
ready = Path(sys.argv[1])
def stall(folder):
    ready.write_text(str(folder))
    time.sleep(600)
registry.artifact_digest = stall
from kiosk.cli import run
sys.argv = ["kiosk", "retrain"]
run()
"""


@pytest.fixture(scope="module")
def small_home(tmp_path_factory: pytest.TempPathFactory, detector: FaceDetector, embedder: FaceEmbedder) -> Path:
    return build_small_home(tmp_path_factory.mktemp("faults") / "home", detector, embedder)


def healthy(db: Path) -> None:
    """What every fault must leave: a sound file and an unbroken audit chain."""
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    engine = make_engine(f"sqlite:///{db}")
    reports = verify_all(session_factory(engine))
    engine.dispose()
    assert all(r.ok for r in reports), reports


def wait_for(condition, timeout: float = 90.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out waiting for the child process"
        time.sleep(0.02)


def count(db: Path, sql: str) -> int:
    """Read-only, so polling never creates the database before the child does."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.OperationalError:  # not created yet
        return 0
    try:
        return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:  # tables not created yet
        return 0
    finally:
        conn.close()


def test_sigkill_while_writing_events_loses_no_committed_event(small_home: Path, tmp_path: Path) -> None:
    home = copy_home(small_home, tmp_path / "home")
    db = home / "kiosk.db"
    child = subprocess.Popen([sys.executable, "-c", EVENTS, str(db)], env={"PYTHONPATH": str(REPO)}, cwd=REPO, stdout=subprocess.PIPE, text=True)
    committed = 0
    while committed < 150:
        committed = int(child.stdout.readline())
    child.send_signal(signal.SIGKILL)
    child.wait()
    rows = count(db, "SELECT count(*) FROM access_events")
    assert rows >= committed  # every event it reported committed is there (one more may have landed)
    assert count(db, f"SELECT count(*) FROM access_events WHERE person_name IN ({','.join(repr(f'P{i}') for i in range(committed))})") == committed
    healthy(db)


def test_sigkill_during_enrolment_keeps_every_stored_sample(tmp_path: Path, detector: FaceDetector) -> None:
    home = tmp_path / "home"
    person = dev_people()[5]
    files = photos(person)
    child = subprocess.Popen([sys.executable, "-m", "kiosk", "enroll", person.name, *map(str, files)], env=kiosk_env(home), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = home / "kiosk.db"
    wait_for(lambda: count(db, "SELECT count(*) FROM face_samples") >= 4)
    child.send_signal(signal.SIGKILL)
    child.wait()
    stored = count(db, "SELECT count(*) FROM face_samples")
    assert 4 <= stored < len(files), "the kill did not land mid-enrolment"
    healthy(db)

    ctx = KioskContext(make_settings(home))
    with ctx.sessions() as s:
        crops = list(s.scalars(select(FaceSample.crop_path)))
    assert len(crops) == stored and all((ctx.settings.crops_dir / c).is_file() for c in crops)
    summary = Enroller(ctx.sessions, detector, ctx.crops).enroll(person.name, files)  # simply run again
    assert (summary.count("duplicate"), summary.count("stored") + summary.count("failed")) == (stored, len(files) - stored)
    healthy(db)


def test_sigkill_during_retrain_leaves_the_previous_model_in_force(small_home: Path, tmp_path: Path, embedder: FaceEmbedder) -> None:
    home = copy_home(small_home, tmp_path / "home")
    ctx = KioskContext(make_settings(home))
    ctx.__dict__["embedder"] = embedder
    registry = ModelRegistry(ctx.sessions, ctx.settings.artifacts_dir)
    before = registry.in_force("face").id
    ready = tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", RETRAIN, str(ready)], env=kiosk_env(home), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(ready.exists)
    half_done = Path(ready.read_text())
    assert half_done.is_dir()  # the new version's folder was already in place when the kill came
    child.send_signal(signal.SIGKILL)
    child.wait()

    assert registry.in_force("face").id == before
    assert load_recogniser(ctx).recogniser.model_version == before
    assert registry.abandon_interrupted() == 1
    assert not half_done.exists()
    with ctx.sessions() as s:
        assert s.scalar(select(TrainingRun.status).order_by(TrainingRun.id.desc()).limit(1)) == "interrupted"
    healthy(home / "kiosk.db")
    assert retrain(ctx).runs["face"] > before  # and the next retrain works


def test_corrupt_newest_model_is_refused_and_the_previous_stays(small_home: Path, tmp_path: Path, embedder: FaceEmbedder) -> None:
    home = copy_home(small_home, tmp_path / "home")
    ctx = KioskContext(make_settings(home))
    ctx.__dict__["embedder"] = embedder
    registry = ModelRegistry(ctx.sessions, ctx.settings.artifacts_dir)
    previous = registry.in_force("face").id
    newest = retrain(ctx).runs["face"]
    templates = registry.folder(registry.in_force("face")) / "templates.npz"
    data = bytearray(templates.read_bytes())
    data[len(data) - 40] ^= 0x01
    templates.write_bytes(bytes(data))

    selection = load_recogniser(ctx)
    assert selection.recogniser.model_version == previous
    assert f"model version {newest} (face): artifact is corrupt (checksum mismatch)" in selection.reason
    assert selection.reason.endswith(f"fell back to v{previous}")

    old = Path(registry.verified_path(registry.newest_intact("face")[0]) / "meta.json")  # type: ignore[index]
    old.write_text(old.read_text() + " ")
    with pytest.raises(KioskError, match=f"no intact face model: model version {newest} .* corrupt .*and 1 older"):
        load_recogniser(ctx)


def hold_write_lock(db: Path, seconds: float, locked: threading.Event) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    locked.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


@pytest.mark.parametrize(("timeout_ms", "succeeds"), [(10000, True), (300, False)])
def test_a_locked_database_is_waited_for_then_reported(tmp_path: Path, timeout_ms: int, succeeds: bool) -> None:
    ctx = KioskContext(make_settings(tmp_path / "home"))
    ctx.settings.database.busy_timeout_ms = timeout_ms
    ctx.engine  # created and migrated before the other writer takes the lock
    db = tmp_path / "home" / "kiosk.db"
    locked = threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(db, 1.5, locked))
    holder.start()
    assert locked.wait(10)
    start = time.monotonic()
    try:
        if succeeds:
            with ctx.sessions.begin() as s:
                s.add(AccessEvent(door="front", granted=False, reason="unknown face"))
            assert time.monotonic() - start > 1.0  # it waited for the other writer instead of failing
        else:
            with pytest.raises(KioskError, match=r"database busy: another process held .* for over 300 ms"):
                with ctx.sessions.begin() as s:
                    s.add(AccessEvent(door="front", granted=False, reason="unknown face"))
    finally:
        holder.join()
    with ctx.sessions() as s:
        assert s.scalar(select(func.count(AccessEvent.id))) == (1 if succeeds else 0)
    healthy(db)


@pytest.fixture()
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs: a real ENOSPC, not a simulated one. Needs root (CAP_SYS_ADMIN)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mount)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here: {proc.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(path: Path) -> None:
    """Write until the disk refuses, in big then page-sized pieces, so not a page is left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (1 << 16, 1 << 12):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError:
                pass
    finally:
        os.close(fd)


def test_full_disk_is_reported_and_nothing_committed_is_lost(small_home: Path, tiny_disk: Path, embedder: FaceEmbedder, detector: FaceDetector) -> None:
    home = copy_home(small_home, tiny_disk / "home")
    ctx = KioskContext(make_settings(home))
    ctx.__dict__["embedder"] = embedder
    committed = 0
    with ctx.sessions.begin() as s:
        s.add(AccessEvent(door="front", granted=False, reason="before"))
    committed += 1
    filler = tiny_disk / "filler"
    fill(filler)
    with pytest.raises(StorageFull, match="disk full: the database .* cannot grow"):
        for _ in range(5000):  # the WAL may have a little room left; the disk has none
            with ctx.sessions.begin() as s:
                s.add(AccessEvent(door="front", granted=True, probability=0.9, reason="during", details={"pad": "x" * 500}))
            committed += 1
    # Reading still works: the model in force loads, the chain verifies.
    assert load_recogniser(ctx).recogniser.model_version is not None
    assert all(r.ok for r in verify_all(ctx.sessions))
    known = dev_people()[0]  # already enrolled: the first write is the crop
    with pytest.raises(StorageFull, match="disk full: cannot store the face image"):
        Enroller(ctx.sessions, detector, ctx.crops).enroll(known.name, photos(known)[10:11])
    proc = run_kiosk(["enroll", "Newcomer", str(photos(dev_people()[7])[0])], home)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: disk full"), proc.stderr

    filler.unlink()
    with ctx.sessions.begin() as s:
        s.add(AccessEvent(door="front", granted=False, reason="after"))
    with ctx.sessions() as s:
        reasons = list(s.scalars(select(AccessEvent.reason)))
    assert reasons.count("before") + reasons.count("during") == committed and reasons[-1] == "after"
    ctx.engine.dispose()
    healthy(home / "kiosk.db")


def test_a_retrain_still_running_elsewhere_is_not_abandoned(small_home: Path, tmp_path: Path) -> None:
    """Only runs whose process is gone are abandoned; a live retrain (this process) is left alone."""
    from kiosk.recognition.model_registry import ModelRegistry

    ctx = KioskContext(make_settings(copy_home(small_home, tmp_path / "home")))
    registry = ModelRegistry(ctx.sessions, ctx.settings.artifacts_dir)
    live = registry.start("face", {})
    staging = registry.staging_dir(live)
    assert registry.abandon_interrupted() == 0
    assert staging.exists()
    with ctx.sessions() as s:
        assert s.get_one(TrainingRun, live).status == "running"


# --- hardening (issue 13): a disk already full when the commands start -----------------------------


def test_a_disk_full_at_start_reads_work_writes_say_disk_full_once(small_home: Path, tiny_disk: Path, tmp_path: Path) -> None:
    from kiosk.commands.run import EXIT_DISK_FULL

    home = copy_home(small_home, tiny_disk / "home")
    filler = tiny_disk / "filler"
    fill(filler)  # full before any command opens the database: no WAL index can even be made
    person = dev_people()[0]
    replay = tmp_path / "replay"
    replay.mkdir()
    (replay / "1.jpg").symlink_to(photos(person)[12])
    reads = {
        "identities": ["identities"],
        "audit": ["audit"],
        "audit verify": ["audit", "verify"],
        "identify": ["identify", str(photos(person)[12])],
    }
    for what, args in reads.items():
        proc = run_kiosk(args, home)
        assert proc.returncode == 0, (what, proc.stderr)
        assert "Traceback" not in proc.stderr and "disk I/O error" not in proc.stderr, what
    assert person.name in run_kiosk(["identities"], home).stdout
    enrol = run_kiosk(["enroll", "Newcomer", str(photos(dev_people()[7])[0])], home)
    assert enrol.returncode == 2
    assert [line for line in enrol.stderr.splitlines() if not line.startswith("[")] == [
        f"error: disk full: the database {home / 'kiosk.db'} cannot grow; free space on its disk"
    ]
    run = run_kiosk(["run", "--camera", str(replay)], home, KIOSK_DOOR_HARDWARE__PIN_FACTORY="mock")
    assert run.returncode == EXIT_DISK_FULL and run.stdout == ""
    assert run.stderr.splitlines() == [
        f"error: disk full: {home} cannot store access events, so the door is not started (it would stay shut); "
        "free space on its disk, then start the kiosk again"
    ]
    doctor = run_kiosk(["doctor"], home)
    assert "chown" not in doctor.stdout and f"free space on the disk holding {home}" in doctor.stdout
    for unit in ("kiosk.service", "kiosk-display.service"):  # systemd does not restart into the same full disk
        assert f"RestartPreventExitStatus={EXIT_DISK_FULL}\n" in (REPO / "systemd" / unit).read_text()

    filler.unlink()  # room again: the same data directory takes writes, nothing was lost
    assert run_kiosk(["enroll", "Newcomer", str(photos(dev_people()[7])[0])], home).returncode == 0
    healthy(home / "kiosk.db")
