"""The hybrid rule: the door opens only when CLIP and the face verifier agree and both clear the threshold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import DEV, photos
from tiny_clip import clip_settings, context

from kiosk.recognition.base import Candidate, FaceCrops, Prediction, Recogniser
from kiosk.recognition.clip_model import ClipModel
from kiosk.recognition.clip_recogniser import ClipRecogniser
from kiosk.recognition.face_recogniser import FaceRecogniser
from kiosk.recognition.hybrid_recogniser import HybridPrediction, HybridRecogniser
from kiosk.vision.face_detection import primary_face
from kiosk.vision.images import read_image

pytestmark = pytest.mark.usefixtures("single_torch_thread")
pytest_plugins = ["clip_fixtures"]  # its session fixtures: tiny_weights, clip_trained_home


def pred(name: str, **probs: float) -> Prediction:
    ranked = sorted(probs.items(), key=lambda kv: -kv[1])
    return Prediction(name, 1, [Candidate(p, v, v) for p, v in ranked])


@pytest.fixture(scope="module")
def rule() -> HybridRecogniser:
    """Only combine() is exercised here; it needs no models."""
    return HybridRecogniser.__new__(HybridRecogniser)


@pytest.mark.parametrize(
    ("clip", "face", "person", "probability"),
    [
        ({"ada": 0.95, "bob": 0.05}, {"ada": 0.90, "bob": 0.10}, "ada", 0.90),  # agree, both high: the weaker
        ({"ada": 0.95, "bob": 0.05}, {"ada": 0.70, "bob": 0.10}, "ada", 0.70),  # agree, verifier unsure
        ({"ada": 0.60, "bob": 0.40}, {"ada": 0.99, "bob": 0.01}, "ada", 0.60),  # agree, CLIP unsure
        ({"ada": 0.95, "bob": 0.05}, {"ada": 0.85, "bob": 0.90}, "ada", 0.0),  # disagree: refused however sure
    ],
)
def test_probability_makes_the_both_agree_and_clear_decision(rule: HybridRecogniser, clip: dict, face: dict, person: str, probability: float) -> None:
    rule.model_version = 1
    out = rule.combine(pred("clip", **clip), pred("face", **face))
    assert out.top[0].person == person
    assert out.probability == pytest.approx(probability)
    for threshold in (0.5, 0.65, 0.8, 0.95):
        both = max(clip, key=clip.get) == max(face, key=face.get) and clip[person] >= threshold and face[person] >= threshold
        assert out.as_dict(threshold)["granted"] is both
    assert all(c.probability == 0.0 for c in out.top[1:])
    parts = out.as_dict(0.8)["parts"]
    assert set(parts) == {"clip", "face"} and parts["face"]["person"] == max(face, key=face.get)


def test_hybrid_over_real_models_reports_both_parts(clip_trained_home: Path, tiny_weights: Path, detector, embedder) -> None:
    """Random-weight CLIP: this checks the wiring (both models run, parts recorded), not accuracy."""
    from kiosk.recognition.selection import load_recogniser

    ctx = context(clip_settings(clip_trained_home, tiny_weights, recogniser="hybrid"), detector, embedder)
    recogniser = load_recogniser(ctx).recogniser
    assert isinstance(recogniser, HybridRecogniser)
    assert isinstance(recogniser.clip, ClipRecogniser) and isinstance(recogniser.face, FaceRecogniser)
    person = sorted(p for p in DEV.iterdir() if p.is_dir())[0]
    image = read_image(photos(person)[-1])
    face = primary_face(detector.detect(image).faces, image.shape)
    crops = FaceCrops(image, face.keypoints)
    (out,) = recogniser.predict([crops], top_k=3)
    assert isinstance(out, HybridPrediction) and len(out.top) == 3
    (clip_alone,) = recogniser.clip.predict([crops], top_k=3)
    (face_alone,) = recogniser.face.predict([crops], top_k=3)
    assert out.clip.top == clip_alone.top and out.face.top == face_alone.top
    expected = min(clip_alone.probability, face_alone.probability) if clip_alone.person == face_alone.person else 0.0
    assert out.probability == pytest.approx(expected)
    clip_probs = recogniser.clip.prediction_from_scores(recogniser.clip.scores([crops])[0], top_k=100)
    assert sum(c.probability for c in clip_probs.top) == pytest.approx(1.0)  # a softmax over everyone
    assert np.isclose(recogniser.clip.logit_scale, ClipModel.from_settings(ctx.settings.models).logit_scale)


class Fixed(Recogniser):
    """A recogniser that answers from a table by face index and counts the faces it was asked about."""

    def __init__(self, name: str, answers: list[dict[str, float]]):
        self.name, self.model_version, self.answers, self.asked = name, 1, answers, 0

    @property
    def people(self) -> list[str]:
        return ["ada", "bob"]

    def predict(self, faces: list[FaceCrops], top_k: int = 5) -> list[Prediction]:
        self.asked += len(faces)
        return [pred(self.name, **self.answers[int(f.at(112)[0, 0, 0])]) for f in faces]


def test_gate_skips_clip_only_where_it_cannot_change_the_decision() -> None:
    faces = [FaceCrops.from_crop(np.full((112, 112, 3), i, np.uint8)) for i in range(3)]
    face = Fixed("face", [{"ada": 0.95, "bob": 0.05}, {"ada": 0.30, "bob": 0.20}, {"ada": 0.49, "bob": 0.10}])
    clip = Fixed("clip", [{"ada": 0.90, "bob": 0.10}] * 3)
    gated = HybridRecogniser(clip, face, gate=0.5).predict(faces)
    assert clip.asked == 1  # only the face the verifier put at or above the gate
    ungated = HybridRecogniser(Fixed("clip", clip.answers), Fixed("face", face.answers), gate=0.0).predict(faces)
    for threshold in (0.5, 0.8, 0.95):  # every threshold at or above the gate: identical decisions
        assert [p.as_dict(threshold)["granted"] for p in gated] == [p.as_dict(threshold)["granted"] for p in ungated]
    assert gated[0].probability == pytest.approx(0.90)
    assert gated[1].probability == 0.0 and gated[1].top[0].person == "ada"  # who the verifier leaned to


def test_clip_answer_is_reused_per_track_only_while_the_verifier_agrees() -> None:
    faces = [FaceCrops.from_crop(np.full((112, 112, 3), i, np.uint8)) for i in range(3)]
    face = Fixed("face", [{"ada": 0.95, "bob": 0.05}, {"ada": 0.10, "bob": 0.90}, {"ada": 0.20, "bob": 0.10}])
    clip = Fixed("clip", [{"ada": 0.90, "bob": 0.10}] * 3)
    hybrid = HybridRecogniser(clip, face, gate=0.5, clip_refresh_frames=3)

    answers = [hybrid.predict_tracked([faces[0]], [7])[0] for _ in range(5)]
    assert clip.asked == 2  # frames 1 and 4: each answer serves at most 3 frames
    assert all(a.probability == pytest.approx(0.90) and a.person == "ada" for a in answers)

    (swapped,) = hybrid.predict_tracked([faces[1]], [7])  # someone else in the same box: CLIP again at once
    assert clip.asked == 3 and swapped.probability == 0.0  # CLIP says ada, the verifier bob: refused
    hybrid.predict_tracked([faces[2]], [7])  # below the gate: no CLIP at all
    assert clip.asked == 3

    hybrid.predict_tracked([faces[0]], [7])
    assert clip.asked == 4  # the verifier's person changed since CLIP last ran, so no reuse
    hybrid.forget_tracks([7])
    hybrid.predict_tracked([faces[0]], [7])
    assert clip.asked == 5  # a visit that ended is forgotten

    hybrid.predict([faces[0]])
    hybrid.predict([faces[0]])
    assert clip.asked == 7  # predict (identify, evaluation) never reuses


def test_every_frame_when_refresh_is_one() -> None:
    faces = [FaceCrops.from_crop(np.zeros((112, 112, 3), np.uint8))]
    clip = Fixed("clip", [{"ada": 0.90, "bob": 0.10}])
    hybrid = HybridRecogniser(clip, Fixed("face", [{"ada": 0.95, "bob": 0.05}]), gate=0.5, clip_refresh_frames=1)
    for _ in range(4):
        hybrid.predict_tracked(faces, [1])
    assert clip.asked == 4


class CountingClip(Recogniser):
    """A CLIP part that answers as the real face recogniser does (trained random CLIP weights
    name nobody), counting the faces it was asked about: what is checked is when CLIP runs."""

    name = "clip"

    def __init__(self, face: Recogniser):
        self.face, self.model_version, self.asked = face, face.model_version, 0

    @property
    def people(self) -> list[str]:
        return self.face.people

    def predict(self, faces: list[FaceCrops], top_k: int = 5) -> list[Prediction]:
        self.asked += len(faces)
        return [Prediction(self.name, p.model_version, p.top) for p in self.face.predict(faces, top_k)]


def test_door_loop_reuses_clip_within_a_visit_and_forgets_it_after(enrolled_dev, tmp_path: Path, detector, embedder) -> None:
    from datetime import datetime, timezone

    from conftest import copy_home, make_settings

    from kiosk.config import PolicyConfig
    from kiosk.context import KioskContext
    from kiosk.door.decision_policy import DecisionPolicy
    from kiosk.door.frame_loop import DoorLoop
    from kiosk.recognition.selection import load_recogniser
    from kiosk.vision.face_tracker import FaceTracker

    ctx = KioskContext(make_settings(copy_home(enrolled_dev[0], tmp_path / "home")))
    ctx.__dict__["embedder"] = embedder
    face = load_recogniser(ctx).recogniser
    clip = CountingClip(face)
    hybrid = HybridRecogniser(clip, face, gate=0.5, clip_refresh_frames=3)
    loop = DoorLoop(detector, FaceTracker(max_missed=2), DecisionPolicy(PolicyConfig(window_frames=5, min_frames=3), 0.8), max_faces=4)
    name, photo = enrolled_dev[1][0]
    image, empty = read_image(photo), np.zeros((480, 640, 3), np.uint8)
    verdicts = []
    for i, frame in enumerate([image] * 7 + [empty] * 3):
        verdicts += loop.process(frame, hybrid, float(i), datetime(2026, 11, 24, 12, tzinfo=timezone.utc)).verdicts
    assert clip.asked == 3  # frames 1, 4 and 7 of the visit, not all 7
    granted = [v for v in verdicts if v.granted]
    assert [v.person for v in granted] == [name] and granted[0].recogniser == "hybrid"
    assert hybrid.remembered_tracks == 0  # the visit ended: nothing kept for it
