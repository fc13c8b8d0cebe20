"""A small enrolled data directory (a few DEV people, a trained face model) for the trust tests."""

from __future__ import annotations

from pathlib import Path

from conftest import dev_people, make_settings, photos

from kiosk.admin.enrolment import Enroller
from kiosk.context import KioskContext
from kiosk.recognition.face_embedder import FaceEmbedder
from kiosk.training.retrain import retrain
from kiosk.vision.face_detection import FaceDetector


def build_small_home(home: Path, detector: FaceDetector, embedder: FaceEmbedder, people: int = 3, per_person: int = 4) -> Path:
    ctx = KioskContext(make_settings(home))
    ctx.__dict__["detector"], ctx.__dict__["embedder"] = detector, embedder
    enroller = Enroller(ctx.sessions, detector, ctx.crops)
    for person in dev_people()[:people]:
        enroller.enroll(person.name, photos(person)[:per_person])
    retrain(ctx)
    ctx.engine.dispose()
    return home
