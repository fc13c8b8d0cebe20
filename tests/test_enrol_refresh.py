"""Enrolled, then let in: the real door service runs on visits the test stages one at a time
while `kiosk enroll`, `kiosk enroll-batch` and `kiosk identities remove` run as separate
processes beside it, as an operator would. No retrain is run: each change refreshes the face
model, and the door picks the new version up through its hot reload. The test waits on the
door's own signals (a decision heard, a model swapped in), never on sleeps."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_home, dev_people, make_settings, photos, run_kiosk
from sqlalchemy import func, select
from visit_camera import VisitCamera

from db.models import AdminAction, TrainingRun
from kiosk.admin.erasure import forget_person
from kiosk.config import CameraConfig, DoorHardwareConfig, PolicyConfig
from kiosk.context import KioskContext
from kiosk.door.relay import build_relay
from kiosk.door.service import DoorService, build_door_service
from kiosk.door.status import DoorDecision
from kiosk.recognition.face_recogniser import NAME as FACE
from kiosk.recognition.face_recogniser import enrolment_scores, margins, templates_from
from kiosk.training.refresh import refresh_face_model
from kiosk.vision.camera import ResilientCamera

WAIT = 300.0  # only a failing test ever waits this long: every wait below ends on an event


class Door:
    """The real door service on a VisitCamera, running in a thread, with every decision heard."""

    def __init__(self, home: Path, detector, embedder):
        settings = make_settings(
            home,
            camera=CameraConfig(stall_seconds=3600.0),
            policy=PolicyConfig(reload_check_seconds=0.1, window_frames=3, min_frames=2, track_max_missed=1, cooldown_seconds=0.0),
            door_hardware=DoorHardwareConfig(pin_factory="mock", relay_pin=17, relay_active_high=True, pulse_seconds=0.05),
        )
        ctx = KioskContext(settings)
        ctx.__dict__["embedder"] = embedder
        self.camera = VisitCamera()
        relay = build_relay(settings.door_hardware)
        self.service: DoorService = build_door_service(ctx, ResilientCamera(self.camera, settings.camera), relay, detector=detector)
        self.decisions: list[DoorDecision] = []
        self.service.add_listener(self.decisions.append)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.service.run, args=(self.stop,), name="door")

    def visit(self, photo: Path) -> list[DoorDecision]:
        """Show one person's photo; the decisions that visit made."""
        before = len(self.decisions)
        assert self.camera.visit(photo).wait(WAIT), "the door loop stopped taking frames"
        return self.decisions[before:]

    def has(self, name: str, present: bool = True) -> bool:
        return self.service.wait_for_model(lambda rec: (name in rec.people) == present, WAIT)


@pytest.fixture()
def home(enrolled_dev, tmp_path: Path, pins) -> Path:
    """A private copy of the DEV site (30 people, a face model), on mock pins."""
    return copy_home(enrolled_dev[0], tmp_path / "home")


def start(home: Path, detector, embedder) -> Door:
    door = Door(home, detector, embedder)
    door.thread.start()
    return door


def stop(door: Door) -> None:
    door.stop.set()
    door.thread.join(timeout=60)
    door.service.relay.shutdown()


def forget(home: Path, embedder, *names: str) -> None:
    """Set-up: these DEV people were never enrolled at this site."""
    ctx = KioskContext(make_settings(home))
    ctx.__dict__["embedder"] = embedder
    for name in names:
        forget_person(ctx, name)
    ctx.engine.dispose()


def count(home: Path, what) -> int:
    ctx = KioskContext(make_settings(home))
    with ctx.sessions() as session:
        n = session.scalar(select(func.count()).select_from(what[0]).where(*what[1:]))
    ctx.engine.dispose()
    return int(n or 0)


def face_versions(home: Path) -> int:
    """Face model versions ever built here (an erasure later marks those that held the person 'erased')."""
    return count(home, (TrainingRun, TrainingRun.recogniser == FACE))


def test_enrolled_while_the_door_runs_is_granted_next_visit_and_removed_is_refused(home, detector, embedder) -> None:
    newcomer, leaver = dev_people()[8], dev_people()[9]
    forget(home, embedder, newcomer.name)
    running = start(home, detector, embedder)
    try:
        first = running.visit(photos(newcomer)[12])
        assert first and not any(d.granted for d in first)  # not enrolled: refused
        left = running.visit(photos(leaver)[12])
        assert [d.person for d in left if d.granted] == [leaver.name]

        versions = face_versions(home)
        done = run_kiosk(["enroll", "--json", newcomer.name, *map(str, photos(newcomer)[:12])], home)
        assert done.returncode == 0, done.stderr
        refresh = json.loads(done.stdout)["refresh"]
        assert refresh["encoded"] == 12 and refresh["version"] > 0  # only the new samples were encoded
        assert running.has(newcomer.name)
        assert running.service.selection.recogniser.model_version == refresh["version"]
        second = running.visit(photos(newcomer)[13])
        assert [d.person for d in second if d.granted] == [newcomer.name]

        gone = run_kiosk(["identities", "remove", leaver.name], home)
        assert gone.returncode == 0, gone.stderr
        assert running.has(leaver.name, present=False)
        after = running.visit(photos(leaver)[13])
        assert after and not any(d.granted for d in after)
    finally:
        stop(running)
    assert face_versions(home) == versions + 2  # one refresh, one rebuild by the erasure
    assert count(home, (AdminAction, AdminAction.action == "retrain")) == 0


def test_a_batch_enrolment_is_one_refresh_and_everyone_in_it_is_let_in(home, detector, embedder, tmp_path) -> None:
    batch = dev_people()[10:13]
    forget(home, embedder, *(p.name for p in batch))
    folder = tmp_path / "new-starters"
    for person in batch:
        (folder / person.name).mkdir(parents=True)
        for photo in photos(person)[:12]:
            (folder / person.name / photo.name).symlink_to(photo)
    versions = face_versions(home)
    running = start(home, detector, embedder)
    try:
        done = run_kiosk(["enroll-batch", "--json", str(folder)], home)
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        assert [p["stored"] for p in out["people"]] == [12, 12, 12] and out["refresh"]["encoded"] == 36
        assert running.service.wait_for_model(lambda rec: all(p.name in rec.people for p in batch), WAIT)
        for person in batch:
            seen = running.visit(photos(person)[12])
            assert [d.person for d in seen if d.granted] == [person.name]
    finally:
        stop(running)
    assert running.service.stats.reloads == 1
    assert face_versions(home) == versions + 1
    assert count(home, (AdminAction, AdminAction.action == "refresh")) == 1


def test_enrol_without_refresh_leaves_the_model_in_force(home, embedder) -> None:
    person = dev_people()[14]
    forget(home, embedder, person.name)
    versions = face_versions(home)
    done = run_kiosk(["enroll", "--no-refresh", "--json", person.name, *map(str, photos(person)[:3])], home)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["refresh"] is None and "--no-refresh" in done.stderr
    assert face_versions(home) == versions
    ctx = KioskContext(make_settings(home))
    ctx.__dict__["embedder"] = embedder
    refreshed = refresh_face_model(ctx, "test")
    assert refreshed is not None and refreshed.encoded == 3 and face_versions(home) == versions + 1
    again = refresh_face_model(ctx, "test")  # nothing new: every feature comes from the cache
    assert again is not None and again.encoded == 0 and again.version != refreshed.version


def test_clip_alone_is_not_refreshed(home, embedder) -> None:
    ctx = KioskContext(make_settings(home, recognition={"recogniser": "clip"}))
    ctx.__dict__["embedder"] = embedder
    versions = face_versions(home)
    assert refresh_face_model(ctx, "test") is None
    assert face_versions(home) == versions


@pytest.mark.parametrize("people,samples", [(1, 4), (2, 6), (3, 9), (40, 200)])
def test_enrolment_evidence_matches_the_per_sample_definition(people: int, samples: int) -> None:
    """The vectorised evidence (what lets a refresh scale) against its definition, one sample at a time."""
    rng = np.random.default_rng(people)
    labels = [f"p{i}" for i in range(people)] + [f"p{rng.integers(people)}" for _ in range(samples - people)]
    centres = rng.normal(size=(people, 32))
    feats = np.array([centres[int(label[1:])] + rng.normal(size=32) for label in labels], dtype=np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    genuine, impostor = enrolment_scores(feats, labels)

    names, templates = templates_from(feats, labels)
    want_genuine, want_impostor = [], []
    for i, f in enumerate(feats):
        own = names.index(labels[i])
        row = (templates @ f).astype(np.float64)
        mates = [j for j, label in enumerate(labels) if label == labels[i] and j != i]
        if mates:
            loo = feats[mates].astype(np.float64).sum(axis=0)
            row[own] = f @ (loo / np.linalg.norm(loo))
            want_genuine.append((row[own], margins(row)[own]))
        if people > 1:
            others = np.delete((templates @ f).astype(np.float64), own)
            best = int(np.argmax(others))
            want_impostor.append((others[best], margins(others)[best]))
    np.testing.assert_allclose(genuine, np.reshape(want_genuine, (-1, 2)), atol=1e-5)
    np.testing.assert_allclose(impostor, np.reshape(want_impostor, (-1, 2)), atol=1e-5)
