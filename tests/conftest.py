"""Shared fixtures: real models and photos from ../shared, real SQLite files under tmp_path.

../shared sits beside the checkout (in CI too); it is read by path and never copied into
the repo. Loading models and enrolling the DEV set are done once per session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from kiosk.config import ModelPaths, Settings
from kiosk.context import KioskContext
from kiosk.recognition.face_embedder import FaceEmbedder
from kiosk.vision.face_detection import FaceDetector

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO.parent / "shared").resolve()
MODELS = SHARED / "models"
DEV = SHARED / "data" / "faces-dev"
STRANGERS = SHARED / "data" / "faces-dev-strangers"
DETECTOR = MODELS / "scrfd_500m_bnkps.onnx"
EMBEDDER = MODELS / "mobilefacenet.onnx"

if not DETECTOR.is_file():
    raise RuntimeError(f"test assets missing: expected ../shared beside the checkout ({SHARED})")


def dev_people() -> list[Path]:
    return sorted(p for p in DEV.iterdir() if p.is_dir())


def photos(person_dir: Path) -> list[Path]:
    """A person's photos in LFW order (1.jpg, 2.jpg, ... 15.jpg)."""
    return sorted(person_dir.glob("*.jpg"), key=lambda p: int(p.stem))


def make_settings(home: Path, **overrides: object) -> Settings:
    return Settings(home=home, models=ModelPaths(detector=DETECTOR, embedder=EMBEDDER), **overrides)


def kiosk_env(home: Path) -> dict[str, str]:
    """Environment for running the real `kiosk` command against a test data directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_")}
    env.update(
        KIOSK_HOME=str(home),
        KIOSK_MODELS__DETECTOR=str(DETECTOR),
        KIOSK_MODELS__EMBEDDER=str(EMBEDDER),
        PYTHONPATH=str(REPO),
    )
    return env


def run_kiosk(args: list[str], home: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m kiosk ARGS` as a separate process, the way an operator would."""
    return subprocess.run(
        [sys.executable, "-m", "kiosk", *args],
        env=kiosk_env(home) | env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


@pytest.fixture()
def pins() -> Iterator[MockFactory]:
    """A fresh gpiozero MockFactory as the default pin factory, as `pin_factory = "mock"` finds it."""
    previous = Device.pin_factory
    factory = MockFactory()
    Device.pin_factory = factory
    yield factory
    factory.reset()
    Device.pin_factory = previous


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "home")


@pytest.fixture()
def kiosk(settings: Settings, detector: FaceDetector, embedder: FaceEmbedder) -> KioskContext:
    """A fresh data directory with the session's loaded models handed in."""
    ctx = KioskContext(settings)
    ctx.__dict__["detector"] = detector
    ctx.__dict__["embedder"] = embedder
    return ctx


@pytest.fixture(scope="session")
def detector() -> FaceDetector:
    return FaceDetector.from_settings(ModelPaths(detector=DETECTOR), Settings(home=Path("/nonexistent")).detection)


@pytest.fixture(scope="session")
def embedder() -> FaceEmbedder:
    return FaceEmbedder.from_settings(ModelPaths(embedder=EMBEDDER))


@pytest.fixture(scope="session")
def enrolled_dev(tmp_path_factory: pytest.TempPathFactory, detector: FaceDetector, embedder: FaceEmbedder) -> tuple[Path, list[tuple[str, Path]]]:
    """A data directory with 12 of each DEV person's 15 photos enrolled and a face model trained.

    Returns the home folder (copy it before changing it) and the held-back (name, photo) pairs.
    """
    from kiosk.admin.enrolment import Enroller
    from kiosk.recognition.face_recogniser import train_face_model
    from kiosk.recognition.model_registry import ModelRegistry
    from kiosk.storage.samples import cached_features, load_samples

    home = tmp_path_factory.mktemp("enrolled") / "home"
    ctx = KioskContext(make_settings(home))
    enroller = Enroller(ctx.sessions, detector, ctx.crops)
    held: list[tuple[str, Path]] = []
    for person in dev_people():
        files = photos(person)
        enroller.enroll(person.name, files[:12])
        held += [(person.name, f) for f in files[12:]]
    samples = load_samples(ctx.sessions, ctx.settings.crops_dir)
    feats = cached_features(ctx.sessions, ctx.crops, samples, embedder.encoder_key, embedder.embed)
    train_face_model(ModelRegistry(ctx.sessions, ctx.settings.artifacts_dir), embedder, samples, feats)
    ctx.engine.dispose()
    return home, held


def copy_home(source: Path, dest: Path) -> Path:
    """A private copy of a data directory (nothing may have it open for writing)."""
    shutil.copytree(source, dest, symlinks=True)
    return dest


class FakeJetsonGPIO(types.ModuleType):
    """The few Jetson.GPIO calls the backend makes, recording the level of each pin."""

    BCM, BOARD, CVM, TEGRA_SOC = 11, 10, 1001, 1000
    OUT, IN, HIGH, LOW = 0, 1, 1, 0
    PUD_OFF, PUD_DOWN, PUD_UP = 20, 21, 22
    BOTH = 33

    def __init__(self) -> None:
        super().__init__("Jetson.GPIO")
        self.mode: int | None = None
        self.levels: dict[int, list[int]] = {}
        self.callbacks: dict[int, object] = {}
        self.cleaned: list[int] = []

    def setwarnings(self, flag: bool) -> None:
        pass

    def setmode(self, mode: int) -> None:
        if self.mode not in (None, mode):
            raise ValueError("A different mode has already been set!")
        self.mode = mode

    def setup(self, pin: int, direction: int, initial: int | None = None, pull_up_down: int | None = None) -> None:
        self.levels[pin] = [self.LOW if initial is None else initial]

    def output(self, pin: int, level: int) -> None:
        self.levels[pin].append(level)

    def input(self, pin: int) -> int:
        return self.levels[pin][-1]

    def add_event_detect(self, pin: int, edge: int, callback: object, bouncetime: int | None = None) -> None:
        self.callbacks[pin] = callback

    def remove_event_detect(self, pin: int) -> None:
        del self.callbacks[pin]

    def cleanup(self, pin: int) -> None:
        self.cleaned.append(pin)


@pytest.fixture
def jetson_gpio(monkeypatch: pytest.MonkeyPatch) -> FakeJetsonGPIO:
    """A stand-in Jetson.GPIO installed for one test (the real one needs a Jetson's kernel driver)."""
    gpio = FakeJetsonGPIO()
    package = types.ModuleType("Jetson")
    package.GPIO = gpio  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "Jetson", package)
    monkeypatch.setitem(sys.modules, "Jetson.GPIO", gpio)
    return gpio
