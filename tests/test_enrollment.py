"""Enrolment end to end: the whole DEV set, the command line, and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from conftest import DEV, dev_people, photos, run_kiosk
from sqlalchemy import func, select

from db.models import AdminAction, FaceSample
from kiosk.admin.enrolment import FAILED, STORED, Enroller, list_identities, remove_identity
from kiosk.context import KioskContext


def test_enrol_all_30_people_finds_a_face_in_all_450_photos(kiosk: KioskContext) -> None:
    enroller = Enroller(kiosk.sessions, kiosk.detector, kiosk.crops)
    failures = []
    for person in dev_people():
        summary = enroller.enroll(person.name, [person])
        failures += [r for r in summary.results if r.status != STORED]
        assert summary.count(STORED) == 15, person.name
    assert failures == []
    people = list_identities(kiosk.sessions)
    assert len(people) == 30 and {p["samples"] for p in people} == {15}
    crops = list(kiosk.settings.crops_dir.rglob("*.png"))
    assert len(crops) == 450
    assert cv2.imread(str(crops[0])).shape == (224, 224, 3)
    assert all(c.stat().st_mode & 0o077 == 0 for c in crops[:20])


def test_duplicates_are_skipped_and_removal_erases_everything(kiosk: KioskContext) -> None:
    enroller = Enroller(kiosk.sessions, kiosk.detector, kiosk.crops)
    files = photos(DEV / "Naomi_Watts")[:3]
    enroller.enroll("Naomi", files)
    same = enroller.enroll("Naomi", files[:1])
    assert same.ok and same.results[0].status == "duplicate"
    assert remove_identity(kiosk.sessions, kiosk.settings.crops_dir, "Naomi") == 3
    with kiosk.sessions() as s:
        assert s.scalar(select(func.count(FaceSample.id))) == 0
        actions = [a.action for a in s.scalars(select(AdminAction).order_by(AdminAction.id))]
    assert actions == ["enroll", "remove"]  # the duplicate-only enrolment stored nothing
    assert not any(kiosk.settings.crops_dir.rglob("*.png"))


def _bad_inputs(folder: Path) -> dict[str, str]:
    """Each kind of bad input, with the words its reason must contain."""
    good = (DEV / "Tiger_Woods" / "1.jpg").read_bytes()
    folder.mkdir()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (folder / "garbled.jpg").write_bytes(good[:2] + bytes(range(256)) * 8)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("this is a text file, not a photo\n")
    noise = np.random.default_rng(1).integers(0, 255, (250, 250, 3), dtype=np.uint8)
    cv2.imwrite(str(folder / "noface.png"), noise)
    return {
        "truncated.jpg": "corrupt or truncated",
        "garbled.jpg": "not an image",
        "empty.jpg": "empty file",
        "notes.jpg": "not an image",
        "noface.png": "no face",
    }


def test_bad_input_is_reported_by_name_and_nothing_stored_is_lost(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = run_kiosk(["enroll", "Tiger", *map(str, photos(DEV / "Tiger_Woods")[1:3])], home)
    assert first.returncode == 0, first.stderr

    expected = _bad_inputs(tmp_path / "bad")
    huge = tmp_path / "huge.jpg"  # 8000x8000: decoded at reduced scale, the face still found
    photo = cv2.imread(str(DEV / "Tiger_Woods" / "4.jpg"))
    cv2.imwrite(str(huge), cv2.resize(photo, (8000, 8000), interpolation=cv2.INTER_LINEAR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    missing = tmp_path / "no-such-folder"

    proc = run_kiosk(["enroll", "Tiger", str(tmp_path / "bad"), str(huge), str(missing), "--json"], home)
    assert proc.returncode == 1  # something failed
    summary = json.loads(proc.stdout)
    by_name = {Path(f["path"]).name: f for f in summary["files"]}
    for name, words in expected.items():
        assert by_name[name]["status"] == FAILED, name
        assert words in by_name[name]["reason"], (name, by_name[name]["reason"])
        assert name in proc.stderr  # progress lines name each file
    assert by_name["no-such-folder"]["reason"] == "no such file or folder"
    assert by_name["huge.jpg"]["status"] == STORED
    assert summary["stored"] == 1 and summary["failed"] == len(expected) + 1

    listed = json.loads(run_kiosk(["identities", "--json"], home).stdout)
    assert listed == [{"name": "Tiger", "samples": 3, "valid_from": None, "valid_until": None, "card": None}]
    assert len(list((home / "crops").rglob("*.png"))) == 3


def test_cli_enrol_list_remove(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = run_kiosk(["enroll", "Hugo Chavez", str(DEV / "Hugo_Chavez" / "1.jpg"), str(DEV / "Hugo_Chavez" / "2.jpg")], home)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "Hugo Chavez: 2 stored, 0 duplicate, 0 failed"
    assert "[2/2] stored" in proc.stderr
    table = run_kiosk(["identities"], home).stdout
    assert "Hugo Chavez" in table and "2 samples" in table
    gone = run_kiosk(["identities", "remove", "Hugo Chavez"], home)
    assert gone.returncode == 0 and "2 samples erased" in gone.stdout
    assert json.loads(run_kiosk(["identities", "--json"], home).stdout) == []
    nobody = run_kiosk(["identities", "remove", "Nobody"], home)
    assert nobody.returncode == 2 and nobody.stderr.strip() == "error: no enrolled person named 'Nobody'"


# --- hardening (issue 13, item 13): a dangling symlink is reported -----------------------------


def test_a_dangling_symlink_in_an_enrolment_folder_is_reported_not_skipped(kiosk: KioskContext, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    good = photos(DEV / "Hugo_Chavez")[0]
    (folder / "1.jpg").symlink_to(good)
    (folder / "2.jpg").symlink_to(tmp_path / "moved-away.jpg")
    summary = Enroller(kiosk.sessions, kiosk.detector, kiosk.crops).enroll("Hugo", [folder])
    by_name = {Path(r.path).name: r for r in summary.results}
    assert by_name["1.jpg"].status == STORED
    assert by_name["2.jpg"].status == FAILED and "broken link" in by_name["2.jpg"].reason and "moved-away.jpg" in by_name["2.jpg"].reason
    assert not summary.ok


# --- hardening (issue 13): an enrolment that stores nothing leaves no empty person -----------------


def test_a_photo_already_enrolled_under_another_name_is_refused_and_no_empty_person_is_left(tmp_path: Path) -> None:
    home = tmp_path / "home"
    photo = str(DEV / "Naomi_Watts" / "1.jpg")
    assert run_kiosk(["enroll", "Naomi Watts", photo], home).returncode == 0
    proc = run_kiosk(["enroll", "Someone Else", photo], home)
    assert proc.returncode == 1
    assert "already enrolled for 'Naomi Watts'" in proc.stdout and "0 stored" in proc.stdout
    listed = json.loads(run_kiosk(["identities", "--json"], home).stdout)
    assert [p["name"] for p in listed] == ["Naomi Watts"]


def test_a_refused_key_file_stops_enrolment_before_anything_is_stored(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key = tmp_path / "crops.key"
    assert run_kiosk(["privacy", "new-key", str(key)], home).returncode == 0
    key.chmod(0o644)  # readable by everyone: refused
    proc = run_kiosk(["enroll", "Naomi Watts", str(DEV / "Naomi_Watts" / "1.jpg")], home, KIOSK_PRIVACY__KEY_FILE=str(key))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"error: config: 'privacy.key_file' {key} is readable by other users: chmod 600 it"
    assert json.loads(run_kiosk(["identities", "--json"], home).stdout) == []
    assert not any((home / "crops").rglob("*")) if (home / "crops").exists() else True
