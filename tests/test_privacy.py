"""Biometric data protection: a private data directory, encrypted crops, expiring thumbnails, real erasure."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from conftest import dev_people, photos, run_kiosk
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select, text

from db.audit_chain import verify_all
from db.models import AccessEvent, FaceSample, FeatureCache, Person, TrainingRun
from kiosk.admin.enrolment import Enroller
from kiosk.config import PrivacyConfig
from kiosk.context import KioskContext
from kiosk.errors import ConfigError, KioskError
from kiosk.recognition.model_registry import ModelRegistry
from kiosk.storage import crop_store
from kiosk.storage.crop_store import MAGIC, CropStore
from kiosk.storage.thumbnails import expire_thumbnails, save_thumbnail
from kiosk.training.retrain import retrain

PNG = b"\x89PNG"


def make_key(tmp_path: Path) -> Path:
    key = tmp_path / "keys" / "crops.key"
    crop_store.new_key(key)
    return key


def test_cli_keeps_the_data_directory_private_and_crops_encrypted(kiosk: KioskContext, tmp_path: Path) -> None:
    home = kiosk.settings.home
    key = make_key(tmp_path)
    kiosk.settings.privacy = PrivacyConfig(key_file=key)
    sealed = CropStore(kiosk.settings.crops_dir, key, home)
    enroller = Enroller(kiosk.sessions, kiosk.detector, sealed)
    for person in dev_people()[:2]:
        assert enroller.enroll(person.name, photos(person)[:3]).count("stored") == 3
    kiosk.engine.dispose()
    proc = run_kiosk(["retrain"], home, KIOSK_PRIVACY__KEY_FILE=str(key))  # decrypts in another process
    assert proc.returncode == 0, proc.stderr
    with kiosk.sessions.begin() as s:  # the database stays open, so its WAL and shm files exist
        s.add(AccessEvent(door="front", granted=False, reason="unknown face"))

    loose = []
    for path in [home, *home.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            loose.append(f"{path.relative_to(home)} {oct(mode)}")
    assert (home / "kiosk.db-wal").is_file() and any(home.rglob("*.npz"))
    assert loose == []

    crops = sorted((home / "crops").rglob("*.png"))
    assert len(crops) == 6
    assert all(c.read_bytes().startswith(MAGIC) and PNG not in c.read_bytes() for c in crops)
    assert sealed.read(crops[0]).shape == (224, 224, 3)
    with pytest.raises(KioskError, match="is encrypted, but 'privacy.key_file' is not set"):
        kiosk.crops.read(crops[0])  # the context's own store was built before the key was set
    with pytest.raises(KioskError, match="does not decrypt"):
        CropStore(kiosk.settings.crops_dir, make_key(tmp_path / "other"), home).read(crops[0])


def test_key_file_must_be_private_and_outside_the_data_directory(tmp_path: Path) -> None:
    home = tmp_path / "home"
    inside = home / "crops.key"
    crop_store.new_key(inside)
    with pytest.raises(ConfigError, match="outside the data directory"):
        crop_store.load_key(inside, home)
    key = make_key(tmp_path)
    os.chmod(key, 0o644)
    with pytest.raises(ConfigError, match="readable by other users"):
        crop_store.load_key(key, home)
    with pytest.raises(KioskError, match="already exists"):
        crop_store.new_key(key)


def test_thumbnails_are_optional_and_expire(kiosk: KioskContext, tmp_path: Path) -> None:
    face = np.full((112, 112, 3), 90, np.uint8)
    now = datetime.now(timezone.utc)
    assert save_thumbnail(kiosk.settings, kiosk.crops, now, face) is None  # off by default
    kiosk.settings.privacy = PrivacyConfig(thumbnails=True, thumbnail_retention_days=7, key_file=make_key(tmp_path))
    home = kiosk.settings.home
    sealed = CropStore(kiosk.settings.crops_dir, kiosk.settings.privacy.key_file, home)
    with kiosk.sessions.begin() as s:
        for days in (10, 1):
            when = now - timedelta(days=days)
            s.add(AccessEvent(time=when, door="front", granted=False, reason="unknown face", thumbnail_path=save_thumbnail(kiosk.settings, sealed, when, face)))
    orphan = home / "thumbnails" / (now - timedelta(days=20)).strftime("%Y-%m-%d") / "left-by-a-crash.png"
    sealed.write(orphan, face)
    with kiosk.sessions() as s:
        old, new = s.scalars(select(AccessEvent.thumbnail_path).order_by(AccessEvent.id)).all()
    assert (home / old).read_bytes().startswith(MAGIC) and (sealed.read(home / new) == face).all()

    assert expire_thumbnails(kiosk.sessions, home, 7) == 2
    with kiosk.sessions() as s:
        assert s.scalars(select(AccessEvent.thumbnail_path).order_by(AccessEvent.id)).all() == [None, new]
    assert not (home / old).exists() and not orphan.exists() and (home / new).is_file()
    assert all(r.ok for r in verify_all(kiosk.sessions))


def files_holding(home: Path, needles: dict[str, bytes]) -> list[str]:
    """Which needles occur in which files under home (the database and its WAL included)."""
    found = []
    for path in home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{label} in {path.relative_to(home)}" for label, needle in needles.items() if needle in data]
    return found


def test_remove_leaves_no_image_feature_or_template(kiosk: KioskContext, tmp_path: Path) -> None:
    home = kiosk.settings.home
    kiosk.settings.privacy = PrivacyConfig(thumbnails=True)
    people = dev_people()[:3]
    victim = people[1].name
    enroller = Enroller(kiosk.sessions, kiosk.detector, kiosk.crops)
    for person in people:
        enroller.enroll(person.name, photos(person)[:5])
    first = retrain(kiosk).runs["face"]
    with kiosk.sessions.begin() as s:
        pid = s.scalar(select(Person.id).where(Person.name == victim))
        thumb = save_thumbnail(kiosk.settings, kiosk.crops, datetime.now(timezone.utc), np.random.default_rng(0).integers(0, 255, (112, 112, 3), dtype=np.uint8))
        s.add(AccessEvent(door="front", person_id=pid, person_name=victim, granted=True, probability=0.95, reason="recognised", thumbnail_path=thumb))
        samples = s.scalars(select(FaceSample).where(FaceSample.person_id == pid)).all()
        vectors = s.scalars(select(FeatureCache.vector).join(FaceSample).where(FaceSample.person_id == pid)).all()
    registry = ModelRegistry(kiosk.sessions, kiosk.settings.artifacts_dir)
    folder = registry.folder(registry.in_force("face"))
    meta = json.loads((folder / "meta.json").read_text())
    template = np.load(folder / "templates.npz")["templates"][meta["people"].index(victim)]
    needles = {f"crop {s.sha256[:8]}": (kiosk.settings.crops_dir / s.crop_path).read_bytes()[1000:1064] for s in samples}
    needles |= {f"feature {i}": v[64:128] for i, v in enumerate(vectors)}
    needles |= {f"sample id {s.sha256[:8]}": s.sha256.encode() for s in samples}
    needles |= {"template": template.tobytes()[64:128], "thumbnail": (home / thumb).read_bytes()[100:164]}
    assert len(samples) == 5 and len(vectors) == 5
    assert len(files_holding(home, needles)) >= len(needles)  # all findable before the removal
    kiosk.engine.dispose()

    door = sqlite3.connect(home / "kiosk.db")  # the door service keeps the database open: the WAL stays
    door.execute("SELECT count(*) FROM people").fetchone()
    proc = run_kiosk(["identities", "remove", victim], home, KIOSK_PRIVACY__THUMBNAILS="true")
    assert proc.returncode == 0, proc.stderr
    assert f"removed {victim}: 5 samples erased; face model v" in proc.stdout
    ctx = KioskContext(kiosk.settings)
    ctx.__dict__["embedder"] = kiosk.embedder
    retrain(ctx)

    assert files_holding(home, needles) == []
    door.close()
    name = victim.encode()
    assert [str(p.relative_to(home)) for p in home.rglob("*") if p.is_file() and not p.name.startswith("kiosk.db") and name in p.read_bytes()] == []

    with ctx.engine.connect() as conn:
        tables = sa_inspect(conn).get_table_names()
        mentions, close = [], []
        for table in tables:
            for row in conn.execute(text(f'SELECT * FROM "{table}"')).mappings():
                for column, value in row.items():
                    if isinstance(value, str) and victim in value:
                        mentions.append(f"{table}.{column}")
                    if isinstance(value, bytes) and len(value) == len(vectors[0]):
                        v = np.frombuffer(value, np.float32)
                        if max(float(v @ np.frombuffer(x, np.float32)) for x in vectors) > 0.999:
                            close.append(f"{table}.{column}")
    # Only the audit trail keeps the name: their door event and the enrol/remove actions.
    assert sorted(set(mentions)) == ["access_events.person_name", "admin_actions.details", "admin_actions.subject"]
    assert close == []
    assert (home / "crops" / str(pid)).exists() is False
    with ctx.sessions() as s:
        assert s.scalar(select(AccessEvent.thumbnail_path).where(AccessEvent.person_name == victim)) is None
        assert s.get_one(TrainingRun, first).status == "erased"
    meta = json.loads((registry.folder(registry.in_force("face")) / "meta.json").read_text())
    assert meta["people"] == sorted(p.name for p in people if p.name != victim)
    assert all(r.ok for r in verify_all(ctx.sessions))
