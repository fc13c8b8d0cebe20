"""A person enrolled after the CLIP version in force: the face model knows them at once, the
hybrid does what recognition.awaiting_clip says (and says it), and CLIP's catch-up retrain runs
when due, one at a time, in a background process. Tiny random-weight CLIP: mechanics only."""

from __future__ import annotations

import json
import os
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import STRANGERS, copy_home, photos, run_kiosk
from tiny_clip import clip_env, clip_settings, context

from db.models import TrainingRun, utcnow
from kiosk.admin.enrolment import Enroller
from kiosk.recognition.base import FaceCrops
from kiosk.recognition.hybrid_recogniser import HybridRecogniser
from kiosk.recognition.selection import load_recogniser
from kiosk.training.catch_up import catch_up_due, clip_pending, in_force
from kiosk.training.process import retrain_in_process
from kiosk.training.progress import RetrainCancelled, RetrainProgress
from kiosk.training.refresh import refresh_after_enrolment
from kiosk.vision.face_detection import primary_face
from kiosk.vision.images import read_image

pytestmark = pytest.mark.usefixtures("single_torch_thread")
pytest_plugins = ["clip_fixtures"]

NEWCOMER = sorted(p for p in STRANGERS.iterdir() if p.is_dir())[0]


@pytest.fixture()
def newcomer_home(clip_trained_home: Path, tmp_path: Path, tiny_weights: Path, detector, embedder) -> Path:
    """The CLIP site, then one more person enrolled (and the face model refreshed), CLIP not retrained."""
    home = copy_home(clip_trained_home, tmp_path / "home")
    ctx = context(clip_settings(home, tiny_weights), detector, embedder)
    Enroller(ctx.sessions, detector, ctx.crops).enroll(NEWCOMER.name, photos(NEWCOMER)[:6])
    assert refresh_after_enrolment(ctx, [NEWCOMER.name]) is not None
    ctx.engine.dispose()
    return home


def crops_of(detector, photo: Path) -> FaceCrops:
    image = read_image(photo)
    return FaceCrops(image, primary_face(detector.detect(image).faces, image.shape).keypoints)


@pytest.mark.parametrize("awaiting", ["refuse", "face"])
def test_a_person_clip_does_not_know_yet_is_refused_or_decided_by_the_face_alone_and_it_is_said(
    newcomer_home: Path, tiny_weights: Path, detector, embedder, awaiting: str
) -> None:
    settings = clip_settings(newcomer_home, tiny_weights)
    settings.recognition.awaiting_clip = awaiting  # type: ignore[assignment]
    ctx = context(settings, detector, embedder)
    hybrid = load_recogniser(ctx).recogniser
    assert isinstance(hybrid, HybridRecogniser)
    assert NEWCOMER.name in hybrid.face.people and NEWCOMER.name not in hybrid.clip.people
    assert (NEWCOMER.name in hybrid.people) is (awaiting == "face")
    (out,) = hybrid.predict([crops_of(detector, photos(NEWCOMER)[7])])
    (face,) = hybrid.face.predict([crops_of(detector, photos(NEWCOMER)[7])])
    assert face.person == NEWCOMER.name and out.clip is None  # CLIP was not asked: it has no class for them
    assert out.note is not None and out.note.startswith("awaiting retrain") and NEWCOMER.name in out.note
    if awaiting == "refuse":
        assert out.probability == 0.0
    else:
        strict = settings.recognition.awaiting_clip_threshold
        assert out.probability == (face.probability if face.probability >= strict else 0.0)
        assert "face recogniser alone" in out.note


def test_catch_up_is_due_by_count_or_age_and_then_clip_knows_them(newcomer_home: Path, tiny_weights: Path, detector, embedder) -> None:
    ctx = context(clip_settings(newcomer_home, tiny_weights, catch_up_people=2, catch_up_hours=24), detector, embedder)
    assert [p.person for p in clip_pending(ctx)] == [NEWCOMER.name]
    due, why = catch_up_due(ctx)
    assert not due and "1 waiting for CLIP" in why
    due, why = catch_up_due(ctx, now=utcnow() + timedelta(hours=25))
    assert due and "24 h" in why
    env = clip_env(tiny_weights) | {"KIOSK_TRAINING__EPOCHS": "1", "KIOSK_TRAINING__CATCH_UP_PEOPLE": "2"}
    skipped = run_kiosk(["retrain", "--if-due", "--json"], newcomer_home, **env)
    assert skipped.returncode == 0, skipped.stderr
    assert json.loads(skipped.stdout)["due"] is False and "not due" in skipped.stderr
    clip_before = in_force(ctx, "clip")
    done = run_kiosk(["retrain", "--if-due", "--json"], newcomer_home, **(env | {"KIOSK_TRAINING__CATCH_UP_PEOPLE": "1"}))
    assert done.returncode == 0, done.stderr
    runs = json.loads(done.stdout)["runs"]
    clip_now = in_force(ctx, "clip")
    assert clip_now is not None and clip_before is not None and clip_now.version == runs["clip"] > clip_before.version
    assert NEWCOMER.name in clip_now.people and clip_pending(ctx) == []
    with ctx.sessions() as session:
        run = session.get_one(TrainingRun, runs["clip"])
    assert run.params["owner"]["nice"] >= ctx.settings.training.nice  # ran as a background trainer
    assert run.params["owner"]["idle"] is True  # under SCHED_IDLE: a core only when the door leaves one idle


def test_the_admin_apps_retrain_runs_in_its_own_lower_priority_process_and_cancels(newcomer_home: Path, tiny_weights: Path, detector, embedder) -> None:
    settings = clip_settings(newcomer_home, tiny_weights, recogniser="face")
    seen: list[RetrainProgress] = []
    result = retrain_in_process(settings, seen.append)
    assert seen and seen[-1].stage == "done"
    ctx = context(settings, detector, embedder)
    with ctx.sessions() as session:
        run = session.get_one(TrainingRun, result.runs["face"])
    assert run.params["owner"]["pid"] != os.getpid()
    assert run.params["owner"]["nice"] >= os.nice(0) + settings.training.nice or run.params["owner"]["nice"] == 19
    assert run.params["owner"]["idle"] is True and os.sched_getscheduler(0) != os.SCHED_IDLE  # the child's, not ours
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(RetrainCancelled):
        retrain_in_process(settings, cancel=cancel)
    assert in_force(ctx, "face").version == result.runs["face"]  # the cancel left the model in force


def test_awaiting_clip_face_may_not_ask_less_than_the_door() -> None:
    from pydantic import ValidationError

    from kiosk.config import RecognitionConfig

    with pytest.raises(ValidationError, match="awaiting_clip_threshold"):
        RecognitionConfig(awaiting_clip="face", threshold=0.9, awaiting_clip_threshold=0.85)
    assert RecognitionConfig(awaiting_clip="refuse", threshold=0.97).awaiting_clip == "refuse"  # unused: no constraint


def test_the_door_event_says_awaiting_retrain() -> None:
    """What the hybrid notes reaches the event: the refusal's reason, the grant's details."""
    from datetime import datetime, timezone

    from kiosk.config import PolicyConfig
    from kiosk.door.decision_policy import DecisionPolicy, Observation
    from kiosk.recognition.base import Candidate, Prediction

    now = datetime(2026, 3, 4, 10, 0, tzinfo=timezone.utc)
    note = "awaiting retrain: Ann is not yet in CLIP v3"
    policy = DecisionPolicy(PolicyConfig(window_frames=3, min_frames=2), 0.8)
    refused = [v for i in range(3) for v in policy.decide([Observation(1, Prediction("hybrid", 3, [Candidate("Ann", 0.0, 0.97)], note=note), 0)], i * 0.05, now)]
    assert [(v.granted, v.reason) for v in refused] == [(False, note)]
    alone = "awaiting retrain: Bob decided by the face recogniser alone at 0.95 (not yet in CLIP v3)"
    granted = [v for i in range(3) for v in policy.decide([Observation(2, Prediction("hybrid", 3, [Candidate("Bob", 0.97, 0.97)], note=alone), 0)], i * 0.05, now)]
    assert [(v.granted, v.person, v.details["note"]) for v in granted] == [(True, "Bob", alone)]
