"""Names: one spelling per person (NFC, trimmed), and names no table or column can hold refused."""

from __future__ import annotations

import asyncio
import json
import re
import unicodedata
from pathlib import Path

import pytest
from conftest import copy_home, dev_people, make_settings, photos, run_kiosk
from sqlalchemy import func, select
from textual.widgets import Input, Static
from ui_home import admin_app, base_home, sign_in, wait_until

from db.models import Person
from db.session import make_engine, session_factory
from kiosk.admin.person_names import MAX_NAME, person_name
from kiosk.errors import KioskError
from kiosk.ui.camera_enrol_screen import CameraEnrolScreen
from kiosk.ui.enrol_files_screen import EnrolFilesScreen

NFC = "Zoë Ball"
NFD = unicodedata.normalize("NFD", NFC)


def test_a_name_is_stored_in_one_spelling_or_refused_with_the_reason() -> None:
    assert NFD != NFC and person_name(f"  {NFD}\u00a0") == NFC
    assert person_name("x" * MAX_NAME) == "x" * MAX_NAME
    assert person_name("Mehr\u200cnaz") == "Mehr\u200cnaz"  # a zero-width non-joiner is part of some names
    for bad, reason in [
        ("", "empty"),
        ("   ", "empty"),
        ("Ann\tLee", "a tab"),
        ("Ann\nLee", "a newline"),
        ("Ann\x00Lee", "U+0000"),
        ("Ann\u202eeeL", "U+202E"),
        ("x" * (MAX_NAME + 1), f"at most {MAX_NAME}"),
    ]:
        with pytest.raises(KioskError, match=re.escape(reason)):
            person_name(bad)


def test_cli_enrol_and_remove_use_one_spelling_and_refuse_bad_names_in_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    person = photos(dev_people()[9])
    assert run_kiosk(["enroll", NFD, str(person[0])], home).returncode == 0
    assert run_kiosk(["enroll", f" {NFC} ", str(person[1])], home).returncode == 0
    people = json.loads(run_kiosk(["identities", "--json"], home).stdout)
    assert [(p["name"], p["samples"]) for p in people] == [(NFC, 2)]
    for bad, reason in [("A" * 5000, f"at most {MAX_NAME} characters"), ("Ann\tLee", "a tab"), ("Ann\nLee", "a newline")]:
        proc = run_kiosk(["enroll", bad, str(person[2])], home)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and reason in proc.stderr, proc.stderr
        assert proc.stderr.startswith("error: a person's name")
    assert len(json.loads(run_kiosk(["identities", "--json"], home).stdout)) == 1
    gone = run_kiosk(["identities", "remove", NFD], home)
    assert gone.returncode == 0 and "2 samples erased" in gone.stdout, gone.stderr
    refused = run_kiosk(["identities", "remove", "Ann\tLee"], home)
    assert refused.returncode == 2 and "a tab" in refused.stderr


def test_admin_enrol_dialogs_refuse_a_bad_name_at_once(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, detector, embedder) -> None:
    home = copy_home(base_home(tmp_path_factory, detector, embedder), tmp_path / "home")
    asked: list[int] = []

    def frame_source(_home: Path, count: int, _timeout: float) -> list:
        asked.append(count)
        raise KioskError("not asked for in this test")

    too_long = "x" * (MAX_NAME + 1)

    async def drive() -> None:
        app = admin_app(home, detector, embedder, frame_source=frame_source)
        async with app.run_test(size=(120, 40)) as pilot:
            await sign_in(pilot)
            await pilot.press("f2")
            await wait_until(pilot, lambda: app.current_mode == "people")
            await pilot.press("e")
            await wait_until(pilot, lambda: isinstance(app.screen, EnrolFilesScreen))
            screen = app.screen
            screen.query_one("#enrol-name", Input).value = too_long
            screen.query_one("#enrol-paths", Input).value = str(photos(dev_people()[9])[0])
            screen.query_one("#enrol-paths", Input).focus()
            await pilot.press("enter")
            summary = screen.query_one("#enrol-summary", Static)
            await wait_until(pilot, lambda: f"at most {MAX_NAME}" in str(summary.render()), what="the refusal")
            assert not screen.running
            await pilot.press("escape")
            await wait_until(pilot, lambda: not isinstance(app.screen, EnrolFilesScreen))
            await pilot.press("c")
            await wait_until(pilot, lambda: isinstance(app.screen, CameraEnrolScreen))
            camera = app.screen
            camera.query_one("#camera-name", Input).value = too_long
            camera.query_one("#camera-name", Input).focus()
            await pilot.press("enter")
            summary = camera.query_one("#camera-summary", Static)
            await wait_until(pilot, lambda: f"at most {MAX_NAME}" in str(summary.render()), what="the refusal")
            assert not camera.running

    asyncio.run(drive())
    assert asked == [], "no frames are asked for under a name that cannot be stored"
    with session_factory(make_engine(make_settings(home).database_url))() as session:
        assert session.scalar(select(func.count(Person.id)).where(func.length(Person.name) > MAX_NAME)) == 0
