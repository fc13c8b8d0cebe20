"""`kiosk eval`, `kiosk calibrate` and the face recogniser's probabilities, on real photos and models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import DEV, STRANGERS, copy_home, make_settings, photos, run_kiosk
from sqlalchemy import select

from calibration.fitting import calibrate
from calibration.metrics import Attempt, reliability
from db.models import Calibration, Evaluation
from kiosk.context import KioskContext
from kiosk.recognition.base import FaceCrops
from kiosk.recognition.face_embedder import FaceEmbedder
from kiosk.recognition.score_calibration import CalibratedRecogniser
from kiosk.recognition.selection import load_recogniser
from kiosk.vision.face_alignment import CLIP_SIZE, align
from kiosk.vision.face_detection import FaceDetector, primary_face
from kiosk.vision.images import read_image

SUMMARY_KEYS = {"threshold", "fpir", "fnir", "misidentification", "accuracy", "train_accuracy", "attempts", "strangers"}
# Reliability rule: every 0.1-wide probability bin holding at least MIN_BIN attempts must show an
# observed rate of true top candidates within MARGIN (absolute) of its mean predicted probability.
MIN_BIN, MARGIN = 20, 0.10


def _context(home: Path, detector: FaceDetector, embedder: FaceEmbedder) -> KioskContext:
    ctx = KioskContext(make_settings(home))
    ctx.__dict__["detector"] = detector
    ctx.__dict__["embedder"] = embedder
    return ctx


@pytest.fixture(scope="module")
def door_attempts(enrolled_dev: tuple[Path, list[tuple[str, Path]]], detector: FaceDetector) -> list[tuple[str | None, str, FaceCrops]]:
    """Every held-back DEV photo and every stranger photo, detected and aligned once."""
    _, held = enrolled_dev
    items = held + [(None, p) for person in sorted(STRANGERS.iterdir()) for p in photos(person)]
    out = []
    for truth, path in items:
        image = read_image(path)
        face = primary_face(detector.detect(image).faces, image.shape)
        assert face is not None, path
        out.append((truth, path.parent.name, FaceCrops.from_crop(align(image, face.keypoints, CLIP_SIZE))))
    return out


def test_face_probabilities_are_reliable_on_dev(enrolled_dev, door_attempts, detector, embedder, tmp_path) -> None:
    home = copy_home(enrolled_dev[0], tmp_path / "home")
    model = load_recogniser(_context(home, detector, embedder)).recogniser
    preds = model.predict([c for _, _, c in door_attempts], top_k=1)
    attempts = [Attempt(t, p.person, p.probability) for (t, _, _), p in zip(door_attempts, preds)]
    checked = 0
    for b in reliability(attempts):
        if b.count >= MIN_BIN:
            checked += b.count
            assert abs(b.observed - b.predicted) <= MARGIN, b
    assert checked >= 0.8 * len(attempts)  # the rule covered most attempts, not an empty corner


@pytest.fixture(scope="module")
def small_sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Four DEV people and two strangers as folders of links to the shared photos."""
    root = tmp_path_factory.mktemp("subset")
    for src, dst, names in ((DEV, root / "people", ["Ariel_Sharon", "Colin_Powell", "Laura_Bush", "Tony_Blair"]),
                            (STRANGERS, root / "strangers", ["Halle_Berry", "Tom_Hanks"])):
        for name in names:
            (dst / name).mkdir(parents=True)
            for p in photos(src / name):
                (dst / name / p.name).symlink_to(p)
    return root / "people", root / "strangers"


def test_kiosk_eval_writes_json_report_and_records(small_sets, tmp_path) -> None:
    people, strangers = small_sets
    home, out = tmp_path / "home", tmp_path / "out"
    proc = run_kiosk(["eval", str(people), "--strangers", str(strangers), "--report", str(out / "report"), "--json", str(out / "r.json")], home)
    assert proc.returncode == 0, proc.stderr
    assert "FPIR" in proc.stdout and "not run: clip, hybrid" in proc.stdout
    results = json.loads((out / "r.json").read_text())["results"]
    assert set(results) == {"face", "face-softmax"}
    for figures in results.values():
        assert set(figures) == SUMMARY_KEYS
        assert figures["attempts"] == 4 * 3 + 2 * 8 and figures["strangers"] == 16  # 3 of 15 held back each
        assert all(0.0 <= figures[k] <= 1.0 for k in ("fpir", "fnir", "misidentification", "accuracy"))
    for name in ("report.md", "report.json", "det_roc.png", "scores.png", "rates.png", "reliability.png"):
        assert (out / "report" / name).stat().st_size > 0, name
    ctx = KioskContext(make_settings(home))
    with ctx.sessions() as session:
        rows = session.scalars(select(Evaluation)).all()
    assert {r.recogniser for r in rows} == {"face", "face-softmax"}
    assert all(math.isclose(r.results["fpir"], results[r.recogniser]["fpir"]) for r in rows)


def test_kiosk_eval_refuses_a_stranger_who_is_enrolled(small_sets, tmp_path) -> None:
    people, _ = small_sets
    proc = run_kiosk(["eval", str(people), "--strangers", str(people)], tmp_path / "home")
    assert proc.returncode == 2 and "share names with enrolled people" in proc.stderr and "Traceback" not in proc.stderr


def test_calibrate_stores_a_row_that_load_recogniser_applies(enrolled_dev, door_attempts, detector, embedder, tmp_path) -> None:
    home = copy_home(enrolled_dev[0], tmp_path / "home")
    ctx = _context(home, detector, embedder)
    raw = load_recogniser(ctx).recogniser
    assert not isinstance(raw, CalibratedRecogniser)
    result = calibrate(ctx, method="isotonic")
    with ctx.sessions() as session:
        row = session.scalars(select(Calibration)).one()
    assert (row.id, row.recogniser, row.training_run_id, row.method) == (result.calibration_id, "face", raw.model_version, "isotonic")
    assert row.threshold == 0.8 and row.metrics["stranger_evidence"].startswith("enrolled-versus-enrolled")
    door = load_recogniser(ctx).recogniser
    assert isinstance(door, CalibratedRecogniser) and door.calibration_id == row.id
    crops = [c for _, _, c in door_attempts[:3]]
    calibrated, plain = door.predict(crops, top_k=2), raw.predict(crops, top_k=2)
    assert [p.person for p in calibrated] == [p.person for p in plain]
    expected = np.interp([p.top[0].score for p in plain], row.params["x"], row.params["y"])
    assert np.allclose([p.probability for p in calibrated], expected)
    assert all(p.unknown == pytest.approx(1 - p.probability) for p in calibrated)


def test_kiosk_calibrate_cli_with_strangers(enrolled_dev, tmp_path) -> None:
    home = copy_home(enrolled_dev[0], tmp_path / "home")
    proc = run_kiosk(["calibrate", "--strangers", str(STRANGERS / "Tom_Hanks"), "--plot", str(tmp_path / "rel.png"), "--json"], home)
    assert proc.returncode == 0, proc.stderr
    stored = json.loads(proc.stdout)
    assert stored["method"] == "logistic" and stored["metrics"]["strangers"] == 360 + 8
    assert (tmp_path / "rel.png").stat().st_size > 0
