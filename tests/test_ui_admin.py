"""The admin app driven with Textual's Pilot against real SQLite files, real models and photos."""

from __future__ import annotations

import asyncio
import csv
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import copy_home, dev_people, make_settings, photos
from rich.text import Text
from sqlalchemy import func, select
from textual.widgets import DataTable, Input, Static
from ui_home import NOW, PIN, admin_app, base_home, demo_people, sign_in, wait_until, write_door_status

from db.models import AccessEvent, AdminAction, AdminCredential, FaceSample, Person, TrainingRun
from db.session import make_engine, session_factory
from kiosk.door.frame_handover import FrameHandover
from kiosk.door.threshold_override import threshold_in_force
from kiosk.training.status import read_retrain_status
from kiosk.ui.camera_enrol_screen import GOOD_FRAMES, CameraEnrolScreen
from kiosk.ui.enrol_files_screen import EnrolFilesScreen
from kiosk.ui.people_screen import ConfirmRemoveScreen, SamplesScreen
from kiosk.vision.images import read_image


@pytest.fixture(scope="session")
def ui_base(tmp_path_factory: pytest.TempPathFactory, detector, embedder) -> Path:
    return base_home(tmp_path_factory, detector, embedder)


@pytest.fixture()
def home(ui_base: Path, tmp_path: Path) -> Path:
    return copy_home(ui_base, tmp_path / "home")


def table_text(table: DataTable) -> list[list[str]]:
    """Each row's cells as plain text (markup removed)."""
    return [[Text.from_markup(c).plain if isinstance(c, str) else str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def text_of(widget: Static) -> str:
    return str(widget.render())


def test_sign_in_wrong_then_right_pin(home: Path, detector, embedder) -> None:
    asyncio.run(_sign_in_wrong_then_right_pin(home, detector, embedder))


async def _sign_in_wrong_then_right_pin(home: Path, detector, embedder) -> None:
    app = admin_app(home, detector, embedder)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.screen.query("#pin"))
        await pilot.press(*"1357", "enter")
        message = app.screen.query_one("#sign-in-message", Static)
        await wait_until(pilot, lambda: "wrong user name or PIN" in text_of(message), what="the refusal")
        assert app.admin is None
        await pilot.press("f2")  # screens stay shut before sign-in
        assert app.screen.query("#pin")
        await pilot.press(*PIN, "enter")
        await wait_until(pilot, lambda: app.admin == "admin", what="sign-in")
        await wait_until(pilot, lambda: app.current_mode == "door")
    with session_factory(make_engine(make_settings(home).database_url))() as session:
        cred = session.scalars(select(AdminCredential)).one()
        actions = [a.action for a in session.scalars(select(AdminAction).where(AdminAction.subject == "admin").order_by(AdminAction.id))]
    assert cred.failed_attempts == 0 and cred.locked_until is None
    assert PIN not in cred.secret_hash and cred.secret_hash.startswith("$argon2")
    assert actions[-2:] == ["sign-in-failed", "sign-in"]


def test_door_screen_follows_events_written_by_another_connection(home: Path, detector, embedder) -> None:
    asyncio.run(_door_screen_follows_events_written_by_another_connection(home, detector, embedder))


async def _door_screen_follows_events_written_by_another_connection(home: Path, detector, embedder) -> None:
    """The door service writes through its own engine while the admin app polls the same file."""
    write_door_status(home, updated=NOW.timestamp() - 2)
    app = admin_app(home, detector, embedder, poll_seconds=0.05)
    written: list[int] = []
    errors: list[BaseException] = []

    def door_service() -> None:
        sessions = session_factory(make_engine(make_settings(home).database_url))
        try:
            for i in range(40):
                with sessions.begin() as session:
                    event = AccessEvent(time=NOW + timedelta(seconds=i), door="front", person_name=None, granted=False, probability=0.1, reason=f"writer {i}", recogniser="face", model_version=1)
                    session.add(event)
                    session.flush()
                    written.append(event.id)
                time.sleep(0.01)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot)
        status = app.screen.query_one("#door-status", Static)
        await wait_until(pilot, lambda: "14.8 fps" in text_of(status), what="the service status")
        assert "running (pid 4242, status 2 s old)" in text_of(status)
        assert "face v1" in text_of(status) and "0.800" in text_of(status)
        writer = threading.Thread(target=door_service)
        writer.start()
        while writer.is_alive():
            await pilot.pause(0.02)
        writer.join()
        assert not errors, errors
        feed = app.screen.query_one("#feed", DataTable)
        await wait_until(pilot, lambda: feed.row_count and feed.coordinate_to_cell_key((0, 0)).row_key.value == str(written[-1]), what="the newest event at the top")
        assert table_text(feed)[0][4] == "writer 39"


def db(home: Path):
    return session_factory(make_engine(make_settings(home).database_url))


async def _open(pilot, key: str, mode: str) -> None:
    await pilot.press(key)
    await wait_until(pilot, lambda: pilot.app.current_mode == mode, what=mode)
    await pilot.pause()


def test_enrol_from_files_then_see_the_samples(home: Path, tmp_path: Path, detector, embedder) -> None:
    asyncio.run(_enrol_from_files(home, tmp_path, detector, embedder))


async def _enrol_from_files(home: Path, tmp_path: Path, detector, embedder) -> None:
    newcomer = dev_people()[5]
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    already = photos(demo_people()[0])[0]  # enrolled for someone else in the base home
    app = admin_app(home, detector, embedder)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot)
        await _open(pilot, "f2", "people")
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, EnrolFilesScreen))
        screen = app.screen
        screen.query_one("#enrol-name", Input).value = "Newcomer"
        screen.query_one("#enrol-paths", Input).value = f"{newcomer} {notes} {already}"
        screen.query_one("#enrol-paths", Input).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: not screen.running and "stored" in text_of(screen.query_one("#enrol-summary", Static)), what="enrolment")
        rows = table_text(screen.query_one("#enrol-results", DataTable))
        files = len(photos(newcomer)) + 2
        assert len(rows) == files
        by_file = {r[1]: r for r in rows}
        assert "refused" in by_file["notes.txt"][2] and "not an image" in by_file["notes.txt"][3]
        assert "refused" in by_file[already.name][2] and "already enrolled" in by_file[already.name][3]  # another person's photo (issue 13)
        stored = [r for r in rows if "stored" in r[2]]
        assert stored and all("score" in r[3] and "px sharp" in r[3] and "turn" in r[3] for r in stored)
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.current_mode == "people" and not isinstance(app.screen, EnrolFilesScreen))
        people = app.screen.query_one("#people", DataTable)
        await wait_until(pilot, lambda: "Newcomer" in [r[0] for r in table_text(people)], what="the new person listed")
        row = next(r for r in table_text(people) if r[0] == "Newcomer")
        assert int(row[1]) == len(stored)
        people.move_cursor(row=people.get_row_index("Newcomer"))
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, SamplesScreen))
        samples = app.screen
        await wait_until(pilot, lambda: len(samples.query(".sample")) == len(stored), what="the thumbnails")
        assert f"{len(stored)} aligned samples" in text_of(samples.query_one("#samples-title", Static))
    with db(home)() as session:
        count = session.scalar(select(func.count(FaceSample.id)).join(Person).where(Person.name == "Newcomer"))
    assert count == len(stored)
    assert "Newcomer" in face_people_in_force(home)  # the enrolment refreshed the face model: no retrain


def face_people_in_force(home: Path) -> list[str]:
    """Who the face model version in force knows, read from its artifact."""
    import json

    from kiosk.recognition.model_registry import ModelRegistry

    registry = ModelRegistry(db(home), home / "models")
    run = registry.in_force("face")
    assert run is not None
    return json.loads((registry.verified_path(run) / "meta.json").read_text())["people"]


def replay_camera(home: Path, frames: list, stop: threading.Event) -> None:
    """The door loop's side of the handover: offer every frame, as the service does, ~30 fps."""
    handover = FrameHandover(home)
    i = 0
    while not stop.is_set():
        handover.offer(frames[i % len(frames)])
        i += 1
        time.sleep(0.03)


def test_enrol_from_the_kiosk_camera_while_the_door_loop_serves_frames(home: Path, detector, embedder) -> None:
    asyncio.run(_enrol_from_camera(home, detector, embedder))


async def _enrol_from_camera(home: Path, detector, embedder) -> None:
    visitor = dev_people()[7]
    frames = [read_image(p) for p in photos(visitor)]
    write_door_status(home)  # the service's status, as the running door writes it
    stop = threading.Event()
    camera = threading.Thread(target=replay_camera, args=(home, frames, stop), daemon=True)
    camera.start()
    app = admin_app(home, detector, embedder)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await sign_in(pilot)
            await _open(pilot, "f2", "people")
            await pilot.press("c")
            await wait_until(pilot, lambda: isinstance(app.screen, CameraEnrolScreen))
            screen = app.screen
            await pilot.press(*"Visitor", "enter")
            summary = screen.query_one("#camera-summary", Static)
            await wait_until(pilot, lambda: not screen.running and "samples stored from the camera" in text_of(summary), timeout=60, what="capture")
            verdicts = [r[1] for r in table_text(screen.query_one("#camera-frames", DataTable))]
            assert sum(v.startswith("good") for v in verdicts) == GOOD_FRAMES
            assert f"Visitor: {GOOD_FRAMES} samples stored" in text_of(summary)
            assert "in force" in text_of(summary) and "door picks it up" in text_of(summary)
    finally:
        stop.set()
        camera.join()
    with db(home)() as session:
        sources = list(session.scalars(select(FaceSample.source).join(Person).where(Person.name == "Visitor")))
    assert len(sources) == GOOD_FRAMES and all(Path(s).name.startswith("camera-") for s in sources)
    assert "Visitor" in face_people_in_force(home)
    assert not list((home / "captures").glob("*/*")), "temporary frames are deleted"
    assert not list((home / "handover").glob("*")), "no handover request left behind"


def test_retrain_shows_progress_and_old_beside_new_and_cancel_keeps_the_model(home: Path, detector, embedder) -> None:
    asyncio.run(_retrain(home, detector, embedder))


async def _retrain(home: Path, detector, embedder) -> None:
    app = admin_app(home, detector, embedder)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot)
        await _open(pilot, "f3", "retrain")
        screen = app.screen
        stage = screen.query_one("#retrain-stage", Static)
        # Cancel before the worker thread can start: retrain() must stop and keep v1.
        screen.action_start()
        screen.action_cancel()
        await wait_until(pilot, lambda: not screen.running, timeout=300, what="the cancelled retrain (its own process)")
        assert "cancelled" in text_of(stage) and "model in force unchanged: face v1" in text_of(stage)
        await pilot.press("s")
        await wait_until(pilot, lambda: not screen.running, timeout=300, what="the retrain (its own process)")
        assert "done" in text_of(stage) and "face v2 in force" in text_of(stage), text_of(stage)
        compare = {r[0].strip(): r[1:] for r in table_text(screen.query_one("#compare", DataTable))}
        assert compare["face version"] == ["v1", "v2"]
        assert compare["people"] == ["3", "3"] and compare["samples"] == ["12", "12"]
        assert "face v2" in text_of(screen.query_one("#in-force", Static))
    with db(home)() as session:
        runs = {r.id: r.status for r in session.scalars(select(TrainingRun))}
        retrains = session.scalar(select(func.count(AdminAction.id)).where(AdminAction.action == "retrain", AdminAction.actor == "admin"))
    assert runs == {1: "complete", 2: "complete"}
    assert retrains == 2  # the base home's and this one; the cancelled one logged nothing
    status = read_retrain_status(home)  # what another admin app or `kiosk retrain --if-due` would see of it
    assert status is not None and (status.started_by, status.ended, status.outcome) == ("the admin app (admin)", "done", "face v2 in force")


def test_audit_filters_pages_and_exports(home: Path, tmp_path: Path, detector, embedder) -> None:
    asyncio.run(_audit(home, tmp_path, detector, embedder))


async def _audit(home: Path, tmp_path: Path, detector, embedder) -> None:
    name = demo_people()[1].name.replace("_", " ")
    with db(home)() as session:
        total = session.scalar(select(func.count(AccessEvent.id)))
        theirs = session.scalar(select(func.count(AccessEvent.id)).where(AccessEvent.person_name == name))
        refused = session.scalar(select(func.count(AccessEvent.id)).where(AccessEvent.granted.is_(False)))
    app = admin_app(home, detector, embedder, page_size=12)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot)
        await _open(pilot, "f4", "audit")
        screen = app.screen
        page = screen.query_one("#audit-page", Static)
        table = screen.query_one("#audit-table", DataTable)
        await wait_until(pilot, lambda: f"{total} events" in text_of(page))
        assert text_of(page) == f"page 1/{-(-total // 12)}, {total} events" and table.row_count == 12
        await pilot.press("n")
        await wait_until(pilot, lambda: text_of(page).startswith("page 2/"))
        screen.query_one("#person", Input).value = name
        screen.query_one("#person", Input).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: f", {theirs} events" in text_of(page), what="the person filter")
        assert text_of(page).startswith("page 1/1") and {r[2] for r in table_text(table)} == {name}
        assert {r[1] for r in table_text(table)} == {"front"}  # the door column: this door's name
        screen.query_one("#person", Input).value = ""
        screen.query_one("#decision").value = "refused"
        await wait_until(pilot, lambda: f", {refused} events" in text_of(page), what="the decision filter")
        assert {r[4] for r in table_text(table)} == {"refused"}
        screen.query_one("#until", Input).value = "2025-03-03 12:00"  # the first event is at 12:00 UTC
        screen.query_one("#until", Input).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: ", 0 events" in text_of(page), what="the time filter")  # event 0 was granted
        screen.query_one("#until", Input).value = ""
        screen.query_one("#until", Input).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: f", {refused} events" in text_of(page))
        await pilot.press("e")
        await wait_until(pilot, lambda: list((home / "exports").glob("audit-events-*.csv")), what="the export")
        await pilot.press("l")
        await wait_until(pilot, lambda: "admin actions" in text_of(page), what="the admin log")
        actions = {r[2] for r in table_text(table)}
        assert {"enroll", "retrain", "sign-in"} <= actions
    export = next((home / "exports").glob("audit-events-*.csv"))
    assert export.name == "audit-events-20250304-120000.csv"
    rows = list(csv.DictReader(export.open()))
    assert len(rows) == refused and {r["granted"] for r in rows} == {"False"}


def test_remove_a_person_after_a_confirmation_that_says_what_is_erased(home: Path, detector, embedder) -> None:
    asyncio.run(_remove(home, detector, embedder))


async def _remove(home: Path, detector, embedder) -> None:
    name = demo_people()[0].name.replace("_", " ")
    with db(home)() as session:
        person_id = session.scalars(select(Person.id).where(Person.name == name)).one()
    assert (home / "crops" / str(person_id)).is_dir()
    app = admin_app(home, detector, embedder)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot)
        await _open(pilot, "f2", "people")
        people = app.screen.query_one("#people", DataTable)
        await wait_until(pilot, lambda: people.row_count == 3)
        people.move_cursor(row=people.get_row_index(name))
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmRemoveScreen))
        text = text_of(app.screen.query_one(Static))
        assert f"Remove {name}?" in text and "4 face samples" in text and "aligned crops" in text
        await pilot.press("n")  # keep: nothing happens
        await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmRemoveScreen))
        assert people.row_count == 3
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmRemoveScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: people.row_count == 2, what="the person gone from the list")
        assert name not in [r[0] for r in table_text(people)]
    with db(home)() as session:
        assert session.scalar(select(func.count(Person.id)).where(Person.name == name)) == 0
        assert session.scalar(select(func.count(FaceSample.id)).where(FaceSample.person_id == person_id)) == 0
        logged = session.scalars(select(AdminAction).where(AdminAction.action == "remove")).one()
    assert (logged.actor, logged.subject, logged.details) == ("admin", name, {"samples": 4})
    assert not (home / "crops" / str(person_id)).exists()


def test_calibration_shows_rates_and_a_threshold_change_is_logged(home: Path, detector, embedder) -> None:
    asyncio.run(_calibration(home, detector, embedder))


async def _calibration(home: Path, detector, embedder) -> None:
    app = admin_app(home, detector, embedder)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot)
        await _open(pilot, "f5", "calibration")
        screen = app.screen
        box = screen.query_one("#threshold-box", Static)
        cal = screen.query_one("#calibration-box", Static)
        await wait_until(pilot, lambda: "In force" in text_of(box))
        assert "0.800 (configuration)" in text_of(box)
        assert "strangers let in (FPIR) 0.0%, enrolled people refused (FNIR) 1.2%" in text_of(cal)
        assert "Made for model" not in text_of(cal)  # the calibration is for v1, the model in force
        screen.query_one("#new-threshold").focus()
        await pilot.press(*"0.9")
        assert "With 0.900: strangers let in 0.0%, enrolled people refused 3.0%" in text_of(screen.query_one("#preview", Static))
        await pilot.press("enter")
        await wait_until(pilot, lambda: "0.900 (set by admin" in text_of(box), what="the new threshold")
        assert "FNIR) 3.0%" in text_of(cal)
        assert "admin: 0.8 -> 0.9" in text_of(screen.query_one("#changes", Static))
    settings = make_settings(home)
    assert threshold_in_force(settings, db(home)).value == pytest.approx(0.9)
    with db(home)() as session:
        change = session.scalars(select(AdminAction).where(AdminAction.action == "threshold")).one()
    assert change.actor == "admin" and change.details == {"old": 0.8, "new": 0.9}


# --- hardening (issue 13, item 13) -------------------------------------------------------------


def test_every_screen_footer_fits_80_columns_with_the_keys_to_the_other_screens(home: Path, detector, embedder) -> None:
    from textual.widgets._footer import FooterKey

    async def drive() -> dict[str, list[tuple[str, int]]]:
        app = admin_app(home, detector, embedder)
        seen: dict[str, list[tuple[str, int]]] = {}
        async with app.run_test(size=(80, 24)) as pilot:
            await sign_in(pilot)
            for key, mode in (("f2", "people"), ("f4", "audit"), ("f3", "retrain"), ("f5", "calibration"), ("f1", "door")):
                await _open(pilot, key, mode)
                seen[mode] = [(k.key, k.region.right) for k in app.screen.query(FooterKey)]
        return seen

    fkeys = {"door": "f1", "people": "f2", "retrain": "f3", "audit": "f4", "calibration": "f5"}
    for mode, keys in asyncio.run(drive()).items():
        assert all(right <= 80 for _, right in keys), (mode, keys)
        assert {k for k, _ in keys} >= set(fkeys.values()) - {fkeys[mode]}, (mode, keys)


def test_a_cleanly_stopped_door_service_shows_as_stopped(home: Path, tmp_path: Path, detector, embedder) -> None:
    from conftest import run_kiosk

    from kiosk.door.status import read_status

    replay = tmp_path / "replay"
    replay.mkdir()
    for photo in photos(demo_people()[0])[:2]:
        (replay / photo.name).symlink_to(photo)
    proc = run_kiosk(["run", "--camera", str(replay), "--hold", "1", "--gap", "0"], home, KIOSK_DOOR_HARDWARE__PIN_FACTORY="mock")
    assert proc.returncode == 0, proc.stderr
    assert read_status(home).stopped

    async def drive() -> str:
        app = admin_app(home, detector, embedder)
        async with app.run_test(size=(80, 24)) as pilot:
            await sign_in(pilot)
            status = app.screen.query_one("#door-status", Static)
            await wait_until(pilot, lambda: "Service" in text_of(status), what="the status")
            return text_of(status)

    shown = asyncio.run(drive())
    assert "stopped" in shown and "not responding" not in shown, shown


def test_camera_enrolment_says_at_once_when_no_door_service_runs(home: Path, detector, embedder) -> None:
    asked: list[int] = []

    def frame_source(_home: Path, count: int, _timeout: float) -> list:
        asked.append(count)
        raise AssertionError("the door service is not asked for frames when none runs")

    async def drive() -> str:
        app = admin_app(home, detector, embedder, frame_source=frame_source)
        async with app.run_test(size=(80, 24)) as pilot:
            await sign_in(pilot)
            await _open(pilot, "f2", "people")
            await pilot.press("c")
            await wait_until(pilot, lambda: isinstance(app.screen, CameraEnrolScreen))
            screen = app.screen
            await pilot.press(*"Visitor", "enter")
            summary = screen.query_one("#camera-summary", Static)
            await wait_until(pilot, lambda: "door service" in text_of(summary) and not screen.running, what="the answer")
            return text_of(summary)

    assert not (home / "status.json").exists()
    assert "no door service is running" in asyncio.run(drive())
    write_door_status(home, updated=NOW.timestamp() - 600)  # a service that died ten minutes ago
    assert "no door service is running" in asyncio.run(drive())
    assert asked == []
