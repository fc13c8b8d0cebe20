"""Shared set-up for the door benchmarks: a fresh data directory with DEV people enrolled and a
face model trained, and replay folders of their held-back photos and of strangers.

The photos are read by path from ../shared/data (symlinked into a temporary folder, never copied).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHARED = REPO.parent / "shared"
DEV = SHARED / "data" / "faces-dev"
STRANGERS = SHARED / "data" / "faces-dev-strangers"
DETECTOR = SHARED / "models" / "scrfd_500m_bnkps.onnx"
EMBEDDER = SHARED / "models" / "mobilefacenet.onnx"


def photos(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jpg"), key=lambda p: int(p.stem))


def enrolled_home(home: Path, people: int, per_person: int = 12, **settings_overrides: object):
    """A KioskContext on ``home`` with the first ``people`` DEV people enrolled and a face model."""
    from kiosk.admin.enrolment import Enroller
    from kiosk.config import ModelPaths, Settings
    from kiosk.context import KioskContext
    from kiosk.training.retrain import retrain

    settings = Settings(home=home, models=ModelPaths(detector=DETECTOR, embedder=EMBEDDER), **settings_overrides)
    ctx = KioskContext(settings)
    enroller = Enroller(ctx.sessions, ctx.detector, ctx.crops)
    started = time.perf_counter()
    chosen = sorted(p for p in DEV.iterdir() if p.is_dir())[:people]
    for i, person in enumerate(chosen, 1):
        enroller.enroll(person.name, photos(person)[:per_person])
        print(f"  enrolled {i}/{len(chosen)} {person.name}", file=sys.stderr, flush=True)
    retrain(ctx)
    print(f"  set-up: {people} people enrolled and trained in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return ctx, chosen


def replay_folder(folder: Path, people: list[Path], strangers: int, per_stranger: int = 1) -> Path:
    """Symlinks: each enrolled person's held-back photos, then strangers' photos, in that order."""
    folder.mkdir(parents=True)
    shown = [(p.name, f) for p in people for f in photos(p)[12:13]]
    shown += [("stranger-" + s.name, f) for s in sorted(STRANGERS.iterdir())[:strangers] for f in photos(s)[:per_stranger]]
    for i, (label, photo) in enumerate(shown):
        (folder / f"{i:04d}-{label}-{photo.stem}.jpg").symlink_to(photo)
    return folder


def mock_relay():
    """The real relay code on gpiozero's mock pins (no GPIO here)."""
    from kiosk.config import DoorHardwareConfig
    from kiosk.door.relay import build_relay

    return build_relay(DoorHardwareConfig(pin_factory="mock", pulse_seconds=0.5))


def rn50_tower(folder: Path, threads: int):
    """open_clip's RN50 image tower with random weights, exported and loaded as the kiosk does."""
    import open_clip

    from kiosk.recognition.clip_model import ClipModel
    from kiosk.recognition.clip_onnx import onnx_image_tower

    clip = ClipModel(open_clip.create_model("RN50", pretrained=None), "RN50", "random-weights-timing-only", open_clip.get_tokenizer("RN50"))
    return onnx_image_tower(clip, folder, ["CPUExecutionProvider"], threads)


def timing_only_clip(tower, face):
    """A CLIP part that runs the real tower on each face, then answers with the face recogniser.

    Named plainly so no figure from it is mistaken for CLIP recognition: the features are discarded.
    """
    from kiosk.recognition.base import Prediction, Recogniser
    from kiosk.vision.face_alignment import CLIP_SIZE

    class TimingOnlyClip(Recogniser):
        name = "clip"
        model_version = face.model_version
        encoded = 0

        @property
        def people(self) -> list[str]:
            return face.people

        def predict(self, faces, top_k=5):
            tower.encode_images([f.at(CLIP_SIZE) for f in faces])
            self.encoded += len(faces)
            return [Prediction(self.name, p.model_version, p.top) for p in face.predict(faces, top_k)]

    return TimingOnlyClip()


def silent_liveness(threads: int):
    """The Silent-Face check (shared/models) at the models' own threshold, 0.5, K=3 of N=5 (issue 14)."""
    from kiosk.liveness.setup import LivenessSetup
    from kiosk.liveness.silent_face import SilentFace

    models = SHARED / "models"
    detector = SilentFace(models / "minifasnet_v2_2.7_80x80.onnx", models / "minifasnet_v1se_4.0_80x80.onnx", ["CPUExecutionProvider"], threads)
    return LivenessSetup(detector, "bench", 0.5, "bench")


def time_face_frames(service) -> list[float]:
    """Wrap the service's per-frame loop so each frame with a face in view records its seconds in the list returned."""
    busy: list[float] = []
    process = service.loop.process

    def timed(*args, **kwargs):
        start = time.perf_counter()
        result = process(*args, **kwargs)
        if result.faces:
            busy.append(time.perf_counter() - start)
        return result

    service.loop.process = timed
    return busy
