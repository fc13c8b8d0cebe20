"""The ONNX export of CLIP's frozen image tower gives the torch model's features on real face crops."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import DEV, photos
from tiny_clip import clip_paths

from kiosk.recognition.base import FaceCrops
from kiosk.recognition.clip_model import ClipModel
from kiosk.recognition.clip_onnx import OnnxImageTower, export_image_tower
from kiosk.vision.face_alignment import CLIP_SIZE
from kiosk.vision.face_detection import primary_face
from kiosk.vision.images import read_image

pytestmark = pytest.mark.usefixtures("single_torch_thread")
pytest_plugins = ["clip_fixtures"]  # its session fixtures: tiny_weights


def test_onnx_image_tower_matches_torch(tiny_weights: Path, tmp_path: Path, detector) -> None:
    clip = ClipModel.from_settings(clip_paths(tiny_weights))
    tower = OnnxImageTower(export_image_tower(clip, tmp_path / "clip-image.onnx"), ["CPUExecutionProvider"])
    assert tower.encoder_key == clip.encoder_key and tower.image_size == clip.image_size
    crops = []
    for person in sorted(p for p in DEV.iterdir() if p.is_dir())[:3]:
        image = read_image(photos(person)[0])
        face = primary_face(detector.detect(image).faces, image.shape)
        crops.append(FaceCrops(image, face.keypoints).at(CLIP_SIZE))
    torch_feats = clip.encode_images(crops)
    onnx_feats = tower.encode_images(crops)
    assert onnx_feats.shape == torch_feats.shape == (3, 32)
    assert float(np.abs(onnx_feats - torch_feats).max()) < 1e-5
    assert not np.allclose(onnx_feats[0], onnx_feats[1])  # really different faces, not a constant output


def test_door_loads_the_onnx_tower_exported_once_and_decides_as_torch(clip_trained_home: Path, tiny_weights: Path, tmp_path: Path, detector, embedder) -> None:
    from conftest import copy_home
    from tiny_clip import clip_settings, context

    from kiosk.recognition.selection import load_recogniser

    home = copy_home(clip_trained_home, tmp_path / "home")
    settings = clip_settings(home, tiny_weights, recogniser="clip")
    image = read_image(photos(sorted(p for p in DEV.iterdir() if p.is_dir())[0])[-1])
    crops = [FaceCrops(image, primary_face(detector.detect(image).faces, image.shape).keypoints)]

    onnx = load_recogniser(context(settings, detector, embedder)).recogniser
    assert isinstance(onnx.clip, OnnxImageTower)
    (exported,) = (home / "models" / "clip-image").glob("*.onnx")
    stamp = exported.stat().st_mtime_ns
    assert isinstance(load_recogniser(context(settings, detector, embedder)).recogniser.clip, OnnxImageTower)
    assert exported.stat().st_mtime_ns == stamp  # the second load reuses the export

    torch_settings = settings.model_copy(update={"recognition": settings.recognition.model_copy(update={"clip_runtime": "torch"})})
    eager = load_recogniser(context(torch_settings, detector, embedder)).recogniser
    assert isinstance(eager.clip, ClipModel)
    (a,), (b,) = onnx.predict(crops, top_k=30), eager.predict(crops, top_k=30)
    assert [c.person for c in a.top] == [c.person for c in b.top]
    assert np.allclose([c.probability for c in a.top], [c.probability for c in b.top], atol=1e-5)


@pytest.mark.parametrize(("min_cosine", "int8_used"), [(0.9, True), (1.0, False)])
def test_int8_tower_quantised_on_stored_crops_and_bounded(
    clip_trained_home: Path, tiny_weights: Path, tmp_path: Path, detector, embedder, caplog: pytest.LogCaptureFixture, min_cosine: float, int8_used: bool
) -> None:
    import logging

    from conftest import copy_home
    from tiny_clip import clip_settings, context

    from kiosk.recognition.selection import load_recogniser

    home = copy_home(clip_trained_home, tmp_path / "home")
    settings = clip_settings(home, tiny_weights, recogniser="clip")
    recognition = settings.recognition.model_copy(update={"clip_runtime": "onnx-int8", "clip_int8_min_cosine": min_cosine})
    with caplog.at_level(logging.WARNING):
        tower = load_recogniser(context(settings.model_copy(update={"recognition": recognition}), detector, embedder)).recogniser.clip
    (int8,) = (home / "models" / "clip-image").glob("*-int8.onnx")
    measured = float(json.loads(onnx.load(str(int8)).metadata_props[-1].value)["int8_min_cosine"])
    assert 0.9 < measured < 1.0  # int8 is close to fp32 on real faces, and not exact
    assert (tower.path == int8) is int8_used
    assert tower.runtime == ("onnx-int8" if int8_used else "onnx")
    strayed = [r for r in caplog.records if "strays" in r.getMessage()]
    assert len(strayed) == (0 if int8_used else 1)


def test_erasing_a_person_deletes_the_int8_towers_calibrated_on_stored_crops(clip_trained_home: Path, tiny_weights: Path, tmp_path: Path, detector, embedder) -> None:
    from conftest import copy_home
    from tiny_clip import clip_settings, context

    from kiosk.admin.erasure import forget_person
    from kiosk.recognition.selection import load_recogniser

    home = copy_home(clip_trained_home, tmp_path / "home")
    settings = clip_settings(home, tiny_weights, recogniser="clip")
    settings = settings.model_copy(update={"recognition": settings.recognition.model_copy(update={"clip_runtime": "onnx-int8", "clip_int8_min_cosine": 0.9})})
    ctx = context(settings, detector, embedder)
    load_recogniser(ctx)
    towers = home / "models" / "clip-image"
    assert len(list(towers.glob("*-int8.onnx"))) == 1
    report = forget_person(ctx, sorted(p.name for p in DEV.iterdir() if p.is_dir())[0])
    assert "clip int8 image tower" in report.erased_versions
    assert not list(towers.glob("*-int8.onnx")) and len(list(towers.glob("*.onnx"))) == 1  # the fp32 export holds nobody
