"""`kiosk doctor` with the real models on a real data directory: a healthy box passes, and a
broken configuration is named part by part, each with a fix."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from conftest import DETECTOR, EMBEDDER, MODELS, dev_people, make_settings, photos, run_kiosk
from gpiozero.pins.mock import MockFactory

from kiosk.admin.diagnostics import Finding, run_checks
from kiosk.config import CameraConfig, DoorHardwareConfig, LivenessConfig
from kiosk.context import KioskContext
from kiosk.door.status import DoorStatus, write_status
from kiosk.recognition.face_embedder import FaceEmbedder
from kiosk.vision.face_detection import FaceDetector

MOCK_PINS = {"KIOSK_DOOR_HARDWARE__PIN_FACTORY": "mock"}


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory: pytest.TempPathFactory, detector: FaceDetector, embedder: FaceEmbedder) -> Path:
    """Two people, four photos each, and a face model trained on them: a box ready for the door."""
    from kiosk.admin.enrolment import Enroller
    from kiosk.recognition.face_recogniser import train_face_model
    from kiosk.recognition.model_registry import ModelRegistry
    from kiosk.storage.samples import cached_features, load_samples

    home = tmp_path_factory.mktemp("doctor") / "home"
    ctx = KioskContext(make_settings(home))
    enroller = Enroller(ctx.sessions, detector, ctx.crops)
    for person in dev_people()[:2]:
        enroller.enroll(person.name, photos(person)[:4])
    samples = load_samples(ctx.sessions, ctx.settings.crops_dir)
    feats = cached_features(ctx.sessions, ctx.crops, samples, embedder.encoder_key, embedder.embed)
    train_face_model(ModelRegistry(ctx.sessions, ctx.settings.artifacts_dir), embedder, samples, feats)
    ctx.engine.dispose()
    return home


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


def camera_folder() -> Path:
    return dev_people()[0]


def test_a_healthy_box_passes(trained_home: Path, detector: FaceDetector, embedder: FaceEmbedder, pins: MockFactory) -> None:
    settings = make_settings(
        trained_home,
        camera=CameraConfig(source=str(camera_folder())),
        door_hardware=DoorHardwareConfig(pin_factory="mock", relay_active_high=True, contact_pin=27, input_pull="down"),
        liveness=LivenessConfig(v2_model=MODELS / "minifasnet_v2_2.7_80x80.onnx", v1se_model=MODELS / "minifasnet_v1se_4.0_80x80.onnx"),
    )
    ctx = KioskContext(settings)
    ctx.__dict__.update(detector=detector, embedder=embedder)
    found = by_check(run_checks(ctx))
    assert [f.check for f in found.values() if f.status != "ok"] == ["clip"], found  # no CLIP weights here
    assert "replay of" in found["camera"].detail and "first frame" in found["camera"].detail
    assert "face recogniser" in found["recogniser"].detail and "2 people" in found["recogniser"].detail
    assert "migrated to" in found["database"].detail
    assert "closed" in found["relay"].detail and pins.pin(17).state is False
    assert found["door contact"].detail.endswith("reads the door closed")


def test_a_broken_configuration_is_named_part_by_part(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    not_a_database = tmp_path / "events.db"
    not_a_database.write_bytes(b"these are not the pages of an SQLite file" * 100)
    result = run_kiosk(
        ["doctor", "--json"],
        home,
        timeout=120,
        KIOSK_CAMERA__SOURCE=str(tmp_path / "no-such-folder"),
        KIOSK_MODELS__DETECTOR=str(EMBEDDER),  # a real ONNX model, but not a face detector
        KIOSK_DATABASE__URL=f"sqlite:///{not_a_database}",
        KIOSK_DOOR_HARDWARE__RELAY_PIN="99",
        **MOCK_PINS,
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    found = {c["check"]: c for c in report["checks"]}
    assert report["ok"] is False
    failed = {name for name, c in found.items() if c["status"] == "fail"}
    assert failed == {"camera", "detector", "database", "recogniser", "relay"}, found
    assert "no-such-folder" in found["camera"]["detail"]
    assert "not an SCRFD detector" in found["detector"]["detail"] and "models.detector" in found["detector"]["fix"]
    assert "not a database" in found["database"]["detail"]
    assert "99" in found["relay"]["detail"]
    assert found["embedder"]["status"] == "ok"  # what is right is not blamed
    assert all(found[name]["fix"] for name in failed)


def test_a_missing_model_file_and_camera_device_say_where_they_were_looked_for(tmp_path: Path) -> None:
    result = run_kiosk(
        ["doctor"],
        tmp_path / "home",
        timeout=120,
        KIOSK_MODELS__EMBEDDER=str(tmp_path / "mobilefacenet.onnx"),
        KIOSK_CAMERA__SOURCE="7",
        **MOCK_PINS,
    )
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith("[FAIL] embedder") and str(tmp_path / "mobilefacenet.onnx") in line for line in lines), result.stdout
    assert any(line.startswith("[FAIL] camera") and "/dev/video7 does not exist" in line for line in lines), result.stdout
    assert any("fix: set models.embedder" in line for line in lines)


def test_a_configuration_that_does_not_load_is_reported_not_crashed_on(tmp_path: Path) -> None:
    result = run_kiosk(["doctor"], tmp_path / "home", timeout=60, KIOSK_DOOR_HARDWARE__PULSE_SECONDS="forever")
    assert result.returncode == 1
    assert result.stdout.startswith("[FAIL] configuration")
    assert "door_hardware.pulse_seconds" in result.stdout and "Traceback" not in result.stderr


def test_a_running_service_keeps_its_camera_and_pins(trained_home: Path, detector: FaceDetector, embedder: FaceEmbedder, tmp_path: Path) -> None:
    """With the door service up, doctor reads its status rather than grabbing the devices it holds."""
    home = tmp_path / "home"
    home.mkdir()
    write_status(home, DoorStatus("front", "closed", "ok", 19.5, "face", 1, 0.8, time.time(), os.getpid()))
    settings = make_settings(home, camera=CameraConfig(source="9"), door_hardware=DoorHardwareConfig(pin_factory="lgpio"))
    ctx = KioskContext(settings)
    ctx.__dict__.update(detector=detector, embedder=embedder)
    found = by_check(run_checks(ctx))
    assert found["camera"].status == "ok" and "running door service" in found["camera"].detail
    assert found["gpio"].status == "ok" and "held by the running door service" in found["gpio"].detail
    assert DETECTOR.name in found["detector"].detail


# --- hardening (issue 13, item 12): the relay's idle level, mock pins on a board -------------


def test_doctor_shows_the_relay_idle_level_and_fails_on_mock_pins_on_a_board(tmp_path: Path, pins: MockFactory) -> None:
    from gpiozero import Device

    from kiosk.admin.diagnostics import check_gpio

    for active_high, idle in ((False, "high"), (True, "low")):
        ctx = KioskContext(make_settings(tmp_path / "home", door_hardware=DoorHardwareConfig(pin_factory="mock", relay_active_high=active_high)))
        relay = by_check(check_gpio(ctx, None))["relay"]
        assert relay.status == "ok" and f"idle level {idle}" in relay.detail, relay
        assert pins.pin(17).state is (idle == "high")
    board_dev = tmp_path / "dev"
    board_dev.mkdir()
    (board_dev / "gpiochip4").touch()
    Device.pin_factory = None  # a fresh process: gpiozero finds no GPIO library here
    ctx = KioskContext(make_settings(tmp_path / "home", door_hardware=DoorHardwareConfig(pin_factory="auto")))
    gpio = by_check(check_gpio(ctx, None, gpio_dev=board_dev))["gpio"]
    assert gpio.status == "fail" and "gpiochip4" in gpio.detail and 'pin_factory = "mock"' in gpio.detail, gpio
