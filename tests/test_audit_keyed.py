"""The keyed audit chain (issue 13): rows forged with the old unkeyed hash, truncation against a kept
head, and moving an existing unkeyed log under the key. Real SQLite files, the real `kiosk` command."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from conftest import run_kiosk

from db.audit_chain import content_hash, row_content
from db.models import AccessEvent
from db.session import make_engine, session_factory, upgrade


def new_key(tmp_path: Path, home: Path) -> Path:
    key = tmp_path / "keys" / "audit.key"
    proc = run_kiosk(["audit", "new-key", str(key)], home)
    assert proc.returncode == 0, proc.stderr
    assert key.stat().st_mode & 0o777 == 0o600
    return key


def write_events(home: Path, key: Path | None, names: list[str]) -> None:
    """Rows as the door writes them: through the kiosk's session factory (keyed when a key is given)."""
    from kiosk.storage.audit_key import load_audit_key

    engine = make_engine(f"sqlite:///{home / 'kiosk.db'}")
    upgrade(engine)
    sessions = session_factory(engine, None if key is None else load_audit_key(key, home))
    for name in names:
        with sessions.begin() as s:
            s.add(AccessEvent(door="front", person_name=name, granted=True, probability=0.93, reason="recognised"))
    engine.dispose()


def forge_mallory(home: Path) -> None:
    """What an attacker with write access to the file can do: append a grant with a correct unkeyed hash."""
    db = sqlite3.connect(home / "kiosk.db")
    prev = db.execute("SELECT row_hash FROM access_events ORDER BY id DESC LIMIT 1").fetchone()[0]
    row = AccessEvent(time=None, door="front", person_name="Mallory", granted=True, probability=0.99, reason="recognised",
                      recogniser="face", model_version=1, track_id=7, tailgating=False, details={})
    from datetime import datetime, timezone

    row.time = datetime(2026, 11, 29, 3, 0, tzinfo=timezone.utc)
    forged = content_hash("access_events", prev, row_content(row))
    db.execute(
        "INSERT INTO access_events (time, door, person_name, granted, probability, reason, recogniser, model_version,"
        " track_id, tailgating, details, prev_hash, row_hash) VALUES (?, 'front', 'Mallory', 1, 0.99, 'recognised',"
        " 'face', 1, 7, 0, '{}', ?, ?)",
        ("2026-11-29 03:00:00.000000", prev, forged),
    )
    db.commit()
    db.close()


def test_a_row_forged_with_the_unkeyed_hash_is_detected(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key = new_key(tmp_path, home)
    write_events(home, key, ["Ada", "Grace"])
    assert run_kiosk(["audit", "verify"], home, KIOSK_AUDIT__KEY_FILE=str(key)).returncode == 0
    forge_mallory(home)
    proc = run_kiosk(["audit", "verify"], home, KIOSK_AUDIT__KEY_FILE=str(key))
    assert proc.returncode == 1
    assert "access_events: BROKEN at row 3" in proc.stdout and "chained without the audit key" in proc.stdout


def test_a_kept_head_catches_truncation_and_vouches_for_later_rows(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key = new_key(tmp_path, home)
    env = {"KIOSK_AUDIT__KEY_FILE": str(key)}
    write_events(home, key, ["Ada", "Grace", "Alan"])
    heads = json.loads(run_kiosk(["audit", "head", "--json"], home, **env).stdout)
    kept = heads["access_events"]
    write_events(home, key, ["Barbara"])  # the door goes on writing after the head was taken
    later = run_kiosk(["audit", "verify", "--expect-head", kept], home, **env)
    assert later.returncode == 0 and f"expected head {kept[:12]} found in access_events, 1 row(s) after it" in later.stderr
    db = sqlite3.connect(home / "kiosk.db")
    db.execute("DELETE FROM access_events WHERE id >= 3")  # the newest rows, the kept head among them
    db.commit()
    db.close()
    assert run_kiosk(["audit", "verify"], home, **env).returncode == 0  # a shorter chain is still a valid chain ...
    cut = run_kiosk(["audit", "verify", "--expect-head", kept], home, **env)
    assert cut.returncode == 1 and "is NOT in the audit trail" in cut.stderr  # ... but not the one that was kept


def test_an_existing_unkeyed_log_is_refused_until_rekeyed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_events(home, None, ["Ada", "Grace"])
    unkeyed = run_kiosk(["audit", "verify"], home)
    assert unkeyed.returncode == 0 and "the chain is unkeyed" in unkeyed.stderr
    key = new_key(tmp_path, home)
    env = {"KIOSK_AUDIT__KEY_FILE": str(key)}
    refused = run_kiosk(["audit"], home, **env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "written without audit.key_file: run `kiosk audit rekey`" in refused.stderr.strip().splitlines()[-1]
    moved = run_kiosk(["audit", "rekey"], home, **env)
    assert moved.returncode == 0, moved.stderr
    assert "access_events: rekeyed" in moved.stdout
    verified = run_kiosk(["audit", "verify"], home, **env)
    assert verified.returncode == 0 and "access_events: 2 rows verified" in verified.stdout
    actions = run_kiosk(["audit", "verify", "--json"], home, **env)
    assert {c["chain"]: c["rows"] for c in json.loads(actions.stdout)}["admin_actions"] == 1  # the rekey, logged


@pytest.mark.parametrize("problem", ["inside", "readable"])
def test_a_refused_audit_key_is_one_line(tmp_path: Path, problem: str) -> None:
    home = tmp_path / "home"
    key = new_key(tmp_path, home)
    if problem == "inside":
        home.mkdir(exist_ok=True)
        key = key.rename(home / "audit.key")
    else:
        key.chmod(0o644)
    proc = run_kiosk(["audit", "verify"], home, KIOSK_AUDIT__KEY_FILE=str(key))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert ("outside the data directory" if problem == "inside" else "readable by other users") in proc.stderr
