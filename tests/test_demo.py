"""`kiosk demo` on a small folder of people: it runs the door end to end and says where its data stays."""

from __future__ import annotations

from pathlib import Path

from conftest import dev_people, photos, run_kiosk


def test_demo_says_where_its_crops_and_data_are_left(tmp_path: Path) -> None:
    people = tmp_path / "people"
    for person in dev_people()[:2]:
        (people / person.name).mkdir(parents=True)
        for photo in photos(person)[:5]:
            (people / person.name / photo.name).symlink_to(photo)
    home = tmp_path / "demo-home"
    proc = run_kiosk(["demo", str(people)], home, KIOSK_DOOR_HARDWARE__PIN_FACTORY="mock")
    assert proc.returncode == 0, proc.stderr
    crops = sum(p.stat().st_size for p in (home / "crops").rglob("*") if p.is_file())
    assert crops > 0
    last = proc.stdout.strip().splitlines()[-1]
    assert str(home) in last and "face crops" in last and f"rm -r {home}" in last, last
    size_mb = float(last.split(" MB")[0].rsplit(" ", 1)[-1])
    assert size_mb >= crops / 1e6
