"""Liveness (presentation-attack detection) on real images with the real Silent-Face models.

The door tests replay pad-dev's held-aside sources through the real door service: their
people are enrolled from their live image, and the liveness threshold is chosen by `kiosk
calibrate`'s procedure on other sources (apfol, trickyf0x, jtboing) plus the enrolment
crops, never on the images judged here. Which images pass is whatever that threshold gives:
the tests check that the door refuses, with the reason and score on the event, exactly the
recognised faces the silent check scores below it, and never opens for them.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from conftest import MODELS, SHARED, make_settings, run_kiosk
from gpiozero.pins.mock import MockFactory
from PIL import Image
from sqlalchemy import select

from db.models import AccessEvent, AdminAction, LivenessCalibration
from kiosk.config import CameraConfig, DetectionConfig, DoorHardwareConfig, LivenessConfig, ModelPaths, PolicyConfig
from kiosk.context import KioskContext
from kiosk.door.decision_policy import DecisionPolicy, Observation
from kiosk.liveness.base import ATTACK_REASON, TrackLiveness
from kiosk.liveness.gate import LivenessGate
from kiosk.liveness.setup import liveness_wanted, load_liveness
from kiosk.liveness.silent_face import SilentFace
from kiosk.recognition.base import Candidate, Prediction
from kiosk.vision.face_detection import Face, FaceDetector, primary_face
from kiosk.vision.images import read_image

SAMPLES = SHARED / "data" / "liveness-samples"
PAD = SHARED / "data" / "pad-dev"
V2 = MODELS / "minifasnet_v2_2.7_80x80.onnx"
V1SE = MODELS / "minifasnet_v1se_4.0_80x80.onnx"
CALIBRATION_SOURCES = ("apfol", "trickyf0x", "jtboing")  # used to choose; the rest are held aside
RELAY_PIN = 17


def liveness_config(**kw: object) -> LivenessConfig:
    return LivenessConfig(v2_model=V2, v1se_model=V1SE, **kw)


@pytest.fixture(scope="module")
def silent() -> SilentFace:
    return SilentFace(V2, V1SE, ["CPUExecutionProvider"], threads=1)


# --- the models on the source project's own samples -------------------------------------------


def test_source_samples_live_passes_both_spoofs_refused_with_exif_orientation(silent: SilentFace, detector: FaceDetector) -> None:
    scores = {}
    for name in ("live_1", "spoof_1", "spoof_2"):
        image = read_image(SAMPLES / f"{name}.jpg")
        with Image.open(SAMPLES / f"{name}.jpg") as raw:
            assert raw.size == (640, 480) and raw.getexif().get(0x0112) == 6  # stored landscape, EXIF "rotate 90"
        assert image.shape[:2] == (640, 480)  # decoded upright: 640 high, 480 wide
        face = primary_face(detector.detect(image).faces, image.shape)
        assert face is not None, name
        scores[name] = float(silent.score(image, [face.box])[0])
    assert scores["live_1"] >= 0.5 > max(scores["spoof_1"], scores["spoof_2"])  # the models' own operating point


# --- K of N per track ----------------------------------------------------------------------------


def test_one_lucky_frame_does_not_make_a_track_live() -> None:
    track = TrackLiveness(threshold=0.5, frames=5, required=3)
    for p in (0.9, 0.1, 0.2, 0.1):
        track.observe(1, p)
        assert track.judge(1).state == "pending"
    track.observe(1, 0.2)
    judgement = track.judge(1)
    assert judgement.state == "attack" and judgement.score == pytest.approx(0.3)
    for p in (0.7, 0.6, 0.8):
        track.observe(2, p)
    assert track.judge(2).state == "live"
    track.forget([1, 2])
    assert track.judge(1).state == "pending"


class FixedDetector:
    """A liveness detector whose per-frame score is set by the test (the policy's logic, not the model, under test)."""

    name = "fixed"

    def __init__(self, score: float):
        self.value = score
        self.calls = 0

    def score(self, image: np.ndarray, boxes: list[np.ndarray]) -> np.ndarray:
        self.calls += len(boxes)
        return np.full(len(boxes), self.value)


FACE = Face(np.zeros(4, np.float32), 0.9, np.zeros((5, 2), np.float32))


def _prediction(person: str | None, p: float) -> Prediction:
    return Prediction("face", 1, [Candidate(person, p, p)] if person else [])


@pytest.mark.parametrize(("score", "granted"), [(0.9, True), (0.2, False)])
def test_policy_grants_only_recognised_and_live_tracks(score: float, granted: bool) -> None:
    policy = DecisionPolicy(PolicyConfig(window_frames=5, min_frames=3), threshold=0.8)
    detector = FixedDetector(score)
    gate = LivenessGate(detector, threshold=0.5, frames=5, required=3)
    policy.liveness = gate
    now = datetime(2026, 1, 5, 12, tzinfo=timezone.utc)
    frame = np.zeros((10, 10, 3), np.uint8)
    verdicts = []
    for i in range(5):
        # a stranger beside: never scored (liveness runs only on faces recognition would grant)
        predictions = [_prediction("Ada", 0.95), _prediction(None, 0.1)]
        gate.observe(frame, [FACE, FACE], [1, 2], [p.probability >= 0.8 for p in predictions], float(i))
        verdicts += policy.decide([Observation(1, predictions[0], 0), Observation(2, predictions[1], 1)], float(i), now)
    ada = [v for v in verdicts if v.track_id == 1]
    assert len(ada) == 1 and ada[0].granted is granted and ada[0].liveness == pytest.approx(score)
    if granted:
        assert detector.calls == 3  # live after 3 frames: not scored again
    else:
        assert ada[0].reason == ATTACK_REASON and ada[0].details["liveness_check"] == "silent"
        assert detector.calls == 5


# --- configuration ---------------------------------------------------------------------------------


def test_liveness_is_on_by_default_when_its_models_exist_and_off_when_they_do_not(tmp_path: Path) -> None:
    assert liveness_wanted(make_settings(tmp_path, liveness=liveness_config()))
    assert not liveness_wanted(make_settings(tmp_path))  # default paths under an empty home
    assert not liveness_wanted(make_settings(tmp_path, liveness=liveness_config(enabled="off")))
    assert liveness_wanted(make_settings(tmp_path, liveness=LivenessConfig(enabled="on")))
    ctx = KioskContext(make_settings(tmp_path / "h", liveness=LivenessConfig(enabled="on")))
    from kiosk.errors import ConfigError

    with pytest.raises(ConfigError, match="liveness.v2_model"):
        load_liveness(ctx.settings, ctx.sessions)


def test_doctor_reports_liveness(tmp_path: Path) -> None:
    from kiosk.admin.diagnostics import check_liveness

    on = KioskContext(make_settings(tmp_path / "a", liveness=liveness_config()))
    [finding] = check_liveness(on)
    assert finding.status == "ok" and "threshold 0.500" in finding.detail
    off = KioskContext(make_settings(tmp_path / "b"))
    [finding] = check_liveness(off)
    assert finding.status == "warn" and "photo" in finding.detail
    broken = KioskContext(make_settings(tmp_path / "c", liveness=LivenessConfig(enabled="on", v2_model=V2, v1se_model=SAMPLES / "live_1.jpg")))
    [finding] = check_liveness(broken)
    assert finding.status == "fail"


# --- ISO/IEC 30107-3 evaluation ----------------------------------------------------------------


def test_liveness_eval_on_pad_dev_writes_the_iso_figures(tmp_path: Path) -> None:
    out = tmp_path / "lv.json"
    report = tmp_path / "report"
    env = {"KIOSK_LIVENESS__V2_MODEL": str(V2), "KIOSK_LIVENESS__V1SE_MODEL": str(V1SE)}
    result = run_kiosk(["liveness", "eval", "--attacks", str(PAD / "attack"), "--bona-fide", str(PAD / "bona_fide"),
                        "--threshold", "0.5", "--json", str(out), "--report", str(report)], tmp_path / "home", **env)
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    lv = figures["liveness"]
    assert set(lv) == {"threshold", "bpcer", "apcer", "apcer_max", "attacks", "bona_fide", "no_face"}
    assert (lv["attacks"], lv["bona_fide"]) == (35, 30)  # pad-dev's counts
    assert set(lv["apcer"]) == {"print", "replay", "unknown"}  # types from manifest.tsv, not the source folders
    assert lv["apcer_max"] == max(lv["apcer"].values())
    assert set(lv["no_face"]) == {"attacks", "bona_fide"}
    assert all(0.0 <= r <= 1.0 for r in (lv["bpcer"], *lv["apcer"].values()))
    assert "APCER print" in result.stdout
    details = json.loads((report / "figures.json").read_text())
    assert set(details["per_source"]) == {"apfol", "jtboing", "nuaa_nvlong21", "rienheuver", "sakethbachu", "trickyf0x"}
    assert set(details["operating_points"]) == {"1%", "5%", "10%"}
    assert (report / "det.png").stat().st_size > 0


def test_liveness_eval_refuses_bad_folders_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "attacks").mkdir()
    result = run_kiosk(["liveness", "eval", "--attacks", str(tmp_path / "attacks"), "--bona-fide", str(tmp_path / "none")], tmp_path / "home",
                       KIOSK_LIVENESS__V2_MODEL=str(V2), KIOSK_LIVENESS__V1SE_MODEL=str(V1SE))
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0 and "--bona-fide folder does not exist" in result.stderr


# --- through the real door: pad-dev people enrolled from their live image ---------------------


def held_aside_people() -> list[tuple[str, Path, list[tuple[str, Path]]]]:
    """(person, live image, [(attack type, image)]) for every held-aside source with the same person live and attacked."""
    kinds = {r["file"]: r["attack_type"] for r in _manifest() if r["label"] == "attack"}
    people = []
    for live in sorted((PAD / "bona_fide" / "nuaa_nvlong21").glob("*.jpg")):  # NUAA: subject id = first 4 digits
        subject = live.name[:4]
        attacks = sorted((PAD / "attack" / "nuaa_nvlong21").glob(f"{subject}_*.jpg"))
        people.append((f"nuaa-{subject}", live, [(kinds[str(a.relative_to(PAD))], a) for a in attacks]))
    for live in sorted((PAD / "bona_fide" / "rienheuver").glob("*.jpg")):
        attacks = [PAD / "attack" / "rienheuver" / sub / live.name for sub in ("paper", "screen")]
        people.append((f"rienheuver-{live.stem}", live, [(kinds[str(a.relative_to(PAD))], a) for a in attacks]))
    saketh = sorted((PAD / "attack" / "sakethbachu").glob("*.png"))  # the manifest: the same man as real/199.png
    people.append(("sakethbachu-199", PAD / "bona_fide" / "sakethbachu" / "199.png", [(kinds[str(a.relative_to(PAD))], a) for a in saketh]))
    return people


def _manifest() -> list[dict[str, str]]:
    import csv

    with (PAD / "manifest.tsv").open(newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_door_refuses_attacks_the_calibrated_check_scores_below_its_threshold(tmp_path: Path, detector: FaceDetector, embedder, pins: MockFactory) -> None:
    from calibration.liveness import CanvasDetector, score_image
    from kiosk.admin.enrolment import Enroller
    from kiosk.door.relay import build_relay
    from kiosk.door.service import build_door_service
    from kiosk.recognition.face_recogniser import train_face_model
    from kiosk.recognition.model_registry import ModelRegistry
    from kiosk.storage.samples import cached_features, load_samples
    from kiosk.vision.camera import ReplaySource, ResilientCamera

    hardware = DoorHardwareConfig(pin_factory="mock", relay_pin=RELAY_PIN, relay_active_high=True, pulse_seconds=0.05)
    settings = make_settings(
        tmp_path / "home",
        # short windows keep the replay short: 2 of 3 frames for recognition and for liveness alike
        liveness=liveness_config(frames=3, required=2),
        camera=CameraConfig(hold_frames=3, gap_frames=2),
        # a photo right after its owner's grant must be a new visit, not the same one found again
        policy=PolicyConfig(window_frames=3, min_frames=2, track_max_missed=1, cooldown_seconds=0.0),
        door_hardware=hardware,
    )
    # the threshold first, on the calibration sources alone (nobody is enrolled yet): what is judged below stays unseen
    env = {"KIOSK_LIVENESS__V2_MODEL": str(V2), "KIOSK_LIVENESS__V1SE_MODEL": str(V1SE)}
    live = [arg for s in CALIBRATION_SOURCES for arg in ("--live", str(PAD / "bona_fide" / s))]
    result = run_kiosk(["calibrate", "--part", "liveness", *live, "--json"], settings.home, **env)
    assert result.returncode == 0, result.stderr
    fit = json.loads(result.stdout)
    assert fit["bona_fide"] == 9 and fit["bpcer"] <= settings.liveness.target_bpcer  # on its own evidence
    ctx = KioskContext(settings)
    ctx.__dict__["embedder"] = embedder
    with ctx.sessions() as s:
        assert s.scalar(select(LivenessCalibration.threshold)) == fit["threshold"]
        assert s.scalar(select(AdminAction.action).where(AdminAction.action == "calibrate-liveness"))

    enroller = Enroller(ctx.sessions, detector, ctx.crops)
    people = [p for p in held_aside_people() if enroller.enroll(p[0], [p[1]]).ok]
    assert len(people) >= 12  # enrolment's padded detector finds nearly all of the 17 live faces
    samples = load_samples(ctx.sessions, settings.crops_dir)
    train_face_model(ModelRegistry(ctx.sessions, settings.artifacts_dir), embedder,
                     samples, cached_features(ctx.sessions, ctx.crops, samples, embedder.encoder_key, embedder.embed))

    folder = tmp_path / "replay"
    folder.mkdir()
    shown: dict[str, tuple[str, Path]] = {}
    for name, live, attacks in people:
        for kind, image in [("live", live), *attacks]:
            label = f"{len(shown):03d}-{kind}-{name}{image.suffix}"
            (folder / label).symlink_to(image)
            shown[label] = (kind, image)

    door_detector = CanvasDetector(FaceDetector.from_settings(ModelPaths(detector=settings.models.detector), DetectionConfig(pad_fraction=0.0)))
    silent = load_liveness(settings, ctx.sessions)
    assert silent is not None and silent.threshold == fit['threshold']  # the door takes the calibrated threshold
    relay = build_relay(hardware)
    service = build_door_service(ctx, ResilientCamera(ReplaySource.from_path(folder, settings.camera), settings.camera),
                                 relay, detector=door_detector, liveness=silent)
    import threading

    service.run(threading.Event())
    with ctx.sessions() as s:
        events = list(s.scalars(select(AccessEvent).order_by(AccessEvent.id)))
    by_label: dict[str, list[AccessEvent]] = {}
    for e in events:
        by_label.setdefault(e.details.get("frame", ""), []).append(e)

    refused_attacks = granted_live = 0
    for label, (kind, image) in shown.items():
        score, _ = score_image(door_detector, silent.detector, read_image(image))
        got = by_label.get(label, [])
        if score is None or score < fit['threshold']:
            assert not any(e.granted for e in got), (label, score)
            for e in got:
                if e.reason == ATTACK_REASON:  # recognised, not live: the score on the event is the check's
                    assert e.liveness == pytest.approx(score, abs=1e-4) and e.details["liveness_check"] == "silent"
                    refused_attacks += kind != "live"
        else:
            assert all(e.reason != ATTACK_REASON for e in got), (label, score)
            granted_live += kind == "live" and any(e.granted and e.liveness is not None for e in got)
    grants = [e for e in events if e.granted]
    assert sum(1 for st in pins.pin(RELAY_PIN).states if st.state) == len(grants)  # the relay opened for grants only
    assert refused_attacks >= 1 and granted_live >= 1  # the check ran both ways
    print(f"threshold {fit['threshold']:.3f}; {len(people)} people; grants {[e.details['frame'] for e in grants]}")


# --- what people and admins see -------------------------------------------------------------------


class AnnouncingDoor:
    """Stands in for the door service: announces the decisions handed to ``announce`` on its own thread."""

    def __init__(self) -> None:
        from kiosk.door.status import DoorDecision

        self.queue: list[DoorDecision] = []
        self.listeners: list = []
        self.wake = __import__("threading").Event()

    def add_listener(self, callback) -> None:
        self.listeners.append(callback)

    def status(self):
        from kiosk.door.status import DoorStatus

        return DoorStatus("front", "closed", "ok", 15.0, "face", 1, 0.8, 0.0, 1)

    def announce(self, decision) -> None:
        self.queue.append(decision)
        self.wake.set()

    def run(self, stop) -> None:
        while not stop.is_set():
            self.wake.wait(0.05)
            self.wake.clear()
            while self.queue:
                decision = self.queue.pop(0)
                for listener in self.listeners:
                    listener(decision)


def test_door_display_never_accuses_a_refused_presentation_attack() -> None:
    import asyncio

    asyncio.run(_never_accuses())


async def _never_accuses() -> None:
    from textual.widgets import Static
    from ui_home import fixed_clock, wait_until

    from kiosk.door.status import DoorDecision
    from kiosk.ui.door_display import DoorDisplayApp

    door = AnnouncingDoor()
    app = DoorDisplayApp(door, clock=fixed_clock, tz=timezone.utc, greet_seconds=600)
    now = datetime(2026, 1, 5, 12, tzinfo=timezone.utc)
    async with app.run_test(size=(80, 24)) as pilot:
        message = app.query_one("#message", Static)
        door.announce(DoorDecision(now, "Ada", 0.97, True, "recognised", 1))
        await wait_until(pilot, lambda: message.has_class("granted"), what="the greeting")
        door.announce(DoorDecision(now, None, 0.97, False, ATTACK_REASON, 2))
        await wait_until(pilot, lambda: not message.has_class("granted"), what="the liveness refusal")
        assert str(message.render()) == "Please look at the camera" and not message.has_class("refused")
        door.announce(DoorDecision(now, None, 0.1, False, "unknown face", 3))
        await wait_until(pilot, lambda: message.has_class("refused"), what="an ordinary refusal")
        assert str(message.render()) == "Not recognised"


def test_admin_screens_and_audit_export_show_the_liveness_score_and_check() -> None:
    from kiosk.storage.audit_query import EVENT_FIELDS
    from kiosk.ui.text import event_reason

    assert event_reason(ATTACK_REASON, 0.0312, {"liveness_check": "silent"}) == f"{ATTACK_REASON} (liveness 0.03, silent check)"
    assert event_reason("recognised", 0.91) == "recognised (liveness 0.91)"
    assert event_reason("unknown face", None) == "unknown face"
    assert "liveness" in EVENT_FIELDS
