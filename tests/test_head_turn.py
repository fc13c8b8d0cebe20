"""The active head-turn check on synthetic landmark tracks and on replayed frames through SCRFD.

Synthetic: a 3D model of the five points (eyes, nose tip out of their plane, mouth corners),
rotated and projected by a pinhole camera with pixel noise, against a flat picture of the
same points moved, tilted and turned in 3D. Replayed: a real photo warped as a picture held
and tilted in front of the camera, its landmarks found by the real detector frame by frame.
"""

from __future__ import annotations

from datetime import datetime, timezone

import cv2
import numpy as np
import pytest
from conftest import SHARED

from kiosk.config import PolicyConfig
from kiosk.door.decision_policy import DecisionPolicy, Observation
from kiosk.liveness.base import ATTACK_REASON
from kiosk.liveness.gate import LivenessGate
from kiosk.liveness.head_turn import HeadTurnCheck, homography_residual
from kiosk.recognition.base import Candidate, Prediction
from kiosk.vision.face_detection import Face, FaceDetector, primary_face
from kiosk.vision.images import read_image

# Head coordinates in eye distances: x to the image's right, y down, z away from the camera.
HEAD = np.array([[-0.5, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.55, -0.55], [-0.4, 1.0, -0.1], [0.4, 1.0, -0.1]])
FLAT = HEAD * np.array([1.0, 1.0, 0.0])  # a photo of the same face: every point in one plane
FPS = 10.0


def rotation(yaw: float, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ rx @ ry


def project(points: np.ndarray, r: np.ndarray, t: np.ndarray, rng: np.random.Generator, noise_px: float = 0.7) -> np.ndarray:
    cam = (r @ points.T).T + t
    image = 500.0 * cam[:, :2] / cam[:, 2:3] + np.array([320.0, 240.0])
    return image + rng.normal(0.0, noise_px, image.shape)


def run_track(check: HeadTurnCheck, frames: list[np.ndarray], track: int = 1) -> str:
    for i, points in enumerate(frames):
        check.observe(track, points, i / FPS)
        state = check.judge(track, i / FPS).state
        if state != "pending":
            return state
    return check.judge(track, 1e9).state  # the time is up


def head_turning(direction: str, rng: np.random.Generator, degrees: float = 15.0) -> list[np.ndarray]:
    """A real head, slightly off-centre and tilted, turning the asked way over one second, then holding."""
    sign = -1.0 if direction == "left" else 1.0  # the person's left is the image's right: yaw < 0 here
    pitch, roll = rng.uniform(-0.1, 0.1, 2)
    t = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.3, 0.3), rng.uniform(5.0, 8.0)])
    yaws = [sign * np.radians(degrees) * min(1.0, i / FPS) for i in range(int(3 * FPS))]
    return [project(HEAD, rotation(y, pitch, roll), t, rng) for y in yaws]


def picture_moved(rng: np.random.Generator) -> list[np.ndarray]:
    """A flat picture held up, then turned, tilted and brought closer however the attacker likes."""
    start = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.3, 0.3), rng.uniform(5.0, 8.0)])
    end_pose = rng.uniform(-0.8, 0.8, 3)  # up to ~45 degrees yaw, pitch and roll
    end = start + np.array([rng.uniform(-1, 1), rng.uniform(-0.5, 0.5), rng.uniform(-2.5, 1.0)])
    frames = []
    for i in range(int(6 * FPS)):
        a = min(1.0, i / (2 * FPS))
        frames.append(project(FLAT, rotation(*(a * end_pose)), (1 - a) * start + a * end, rng))
    return frames


@pytest.mark.parametrize("direction", ["left", "right"])
def test_a_real_head_turning_the_asked_way_passes(direction: str) -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        check = HeadTurnCheck(seconds=4.0, choose=lambda: direction)
        assert run_track(check, head_turning(direction, rng)) == "live"


def test_a_real_head_turning_the_other_way_or_not_at_all_is_refused() -> None:
    rng = np.random.default_rng(8)
    check = HeadTurnCheck(seconds=4.0, choose=lambda: "left")
    assert run_track(check, head_turning("right", rng), track=1) == "attack"
    still = [project(HEAD, rotation(0.0), np.array([0.0, 0.0, 6.0]), rng) for _ in range(60)]
    assert run_track(check, still, track=2) == "attack"


def test_every_flat_picture_however_tilted_is_refused() -> None:
    rng = np.random.default_rng(9)
    for direction in ("left", "right"):
        for _ in range(100):
            check = HeadTurnCheck(seconds=4.0, choose=lambda: direction)
            assert run_track(check, picture_moved(rng)) == "attack"


def test_the_homography_residual_separates_a_turned_head_from_a_tilted_picture() -> None:
    rng = np.random.default_rng(10)
    t = np.array([0.0, 0.0, 6.0])
    head = homography_residual(project(HEAD, rotation(0.0), t, rng, 0.0), project(HEAD, rotation(np.radians(15)), t, rng, 0.0))
    picture = homography_residual(project(FLAT, rotation(0.0), t, rng, 0.0), project(FLAT, rotation(0.7, 0.3, 0.2), t, rng, 0.0))
    assert head > 0.02 and picture < 1e-6


def test_directions_are_chosen_at_random_per_visit() -> None:
    check = HeadTurnCheck(seconds=4.0)
    origin = project(HEAD, rotation(0.0), np.array([0.0, 0.0, 6.0]), np.random.default_rng(0), 0.0)
    for track in range(64):
        check.observe(track, origin, 0.0)
    asked = {check.prompt(track) for track in range(64)}
    assert len(asked) == 2  # both turns asked (chance of one only: 2 in 2^64)


def test_replayed_frames_of_a_tilted_photo_through_the_detector_are_refused(detector: FaceDetector) -> None:
    """A real photo held up and tilted: each frame its perspective warp, landmarks from real SCRFD."""
    photo = read_image(SHARED / "data" / "liveness-samples" / "live_1.jpg")
    h, w = photo.shape[:2]
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    for direction in ("left", "right"):
        check = HeadTurnCheck(seconds=4.0, choose=lambda: direction)
        for i in range(int(5 * FPS)):
            a = min(1.0, i / (2 * FPS))
            squeeze = 0.25 * a * w  # the picture turned about its vertical axis: one side recedes
            near, far = (0, squeeze) if direction == "left" else (squeeze, 0)
            moved = np.float32([[near, 0.1 * near], [w - far, 0.1 * far], [w - far, h - 0.1 * far], [near, h - 0.1 * near]])
            frame = cv2.warpPerspective(photo, cv2.getPerspectiveTransform(corners, moved), (w, h), borderValue=(90, 90, 90))
            face = primary_face(detector.detect(frame).faces, frame.shape)
            assert face is not None
            check.observe(1, face.keypoints, i / FPS)
            assert check.judge(1, i / FPS).state != "live"
        assert check.judge(1, 1e9).state == "attack"


class AlwaysLive:
    name = "always-live"

    def score(self, image: np.ndarray, boxes: list[np.ndarray]) -> np.ndarray:
        return np.ones(len(boxes))


def test_the_event_says_the_head_turn_refused_a_picture_the_silent_check_passed() -> None:
    rng = np.random.default_rng(11)
    policy = DecisionPolicy(PolicyConfig(window_frames=5, min_frames=3), threshold=0.8)
    gate = LivenessGate(AlwaysLive(), threshold=0.5, frames=5, required=3, head_turn=HeadTurnCheck(4.0, choose=lambda: "left"))
    policy.liveness = gate
    now = datetime(2026, 1, 5, 12, tzinfo=timezone.utc)
    prediction = Prediction("face", 1, [Candidate("Ada", 0.95, 0.95)])
    frame = np.zeros((480, 640, 3), np.uint8)
    verdicts = []
    prompts = []
    for i, points in enumerate(picture_moved(rng)):
        face = Face(np.array([200, 150, 400, 350], np.float32), 0.9, points.astype(np.float32))
        gate.observe(frame, [face], [1], [True], i / FPS)
        prompts += gate.new_prompts([1])
        verdicts += policy.decide([Observation(1, prediction, 0)], i / FPS, now)
    [verdict] = verdicts
    assert not verdict.granted and verdict.reason == ATTACK_REASON
    assert verdict.details["liveness_check"] == "head-turn" and verdict.details["head_turn"] == "left"
    assert prompts == ["Please turn your head a little to your left"]  # asked once per visit
