"""Choosing the recogniser: auto falls back to face in one line; clip/hybrid demanded without CLIP refuse."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from conftest import copy_home
from tiny_clip import clip_settings, context, write_random_weights

from kiosk.config import ModelPaths
from kiosk.errors import KioskError
from kiosk.recognition.clip_model import ClipModel, ClipUnavailable
from kiosk.recognition.selection import load_recogniser
from kiosk.training.retrain import retrain

pytestmark = pytest.mark.usefixtures("single_torch_thread")
pytest_plugins = ["clip_fixtures"]  # its session fixtures: tiny_weights, clip_trained_home


def test_default_rn50_openai_is_unavailable_offline_in_one_line_quickly() -> None:
    with pytest.raises(ClipUnavailable) as exc:
        ClipModel.from_settings(ModelPaths())
    assert "'openai'" in str(exc.value) and "not in the local cache" in str(exc.value)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        ({"clip_pretrained": "/nowhere/clip.pt"}, "does not exist"),
        ({"clip_pretrained": "laion-nonsense"}, "neither a weights file nor a tag"),
        ({"clip_model": "NoSuchNet"}, "not an open_clip architecture"),
    ],
)
def test_bad_clip_configuration_is_one_clear_line(paths: dict[str, str], expected: str) -> None:
    with pytest.raises(ClipUnavailable, match=expected):
        ClipModel.from_settings(ModelPaths(**paths))


def test_auto_falls_back_to_face_with_one_log_line(enrolled_dev, tmp_path: Path, detector, embedder, caplog: pytest.LogCaptureFixture) -> None:
    home = copy_home(enrolled_dev[0], tmp_path / "home")
    ctx = context(clip_settings(home, tmp_path / "missing-weights.pt", recogniser="auto"), detector, embedder)
    with caplog.at_level(logging.INFO):
        selection = load_recogniser(ctx)
    assert selection.recogniser.name == "face"
    assert "configured 'auto'" in selection.reason and "CLIP unavailable" in selection.reason
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "missing-weights.pt" in lines[0].getMessage() and "face recogniser alone" in lines[0].getMessage()


@pytest.mark.parametrize("wanted", ["clip", "hybrid"])
def test_clip_demanded_without_weights_refuses_to_start_and_to_retrain(enrolled_dev, tmp_path: Path, detector, embedder, wanted: str) -> None:
    home = copy_home(enrolled_dev[0], tmp_path / "home")
    ctx = context(clip_settings(home, tmp_path / "missing-weights.pt", recogniser=wanted), detector, embedder)
    with pytest.raises(KioskError, match="needs CLIP, refusing to start: .*does not exist"):
        load_recogniser(ctx)
    from kiosk.recognition.model_registry import ModelRegistry

    before = ModelRegistry(ctx.sessions, ctx.settings.artifacts_dir).in_force("face").id
    with pytest.raises(KioskError, match=f"{wanted!r} needs CLIP"):
        retrain(ctx)
    assert ModelRegistry(ctx.sessions, ctx.settings.artifacts_dir).in_force("face").id == before  # nothing changed


def test_auto_with_weights_and_a_trained_version_is_hybrid(clip_trained_home: Path, tiny_weights: Path, detector, embedder) -> None:
    ctx = context(clip_settings(clip_trained_home, tiny_weights, recogniser="auto"), detector, embedder)
    selection = load_recogniser(ctx)
    assert selection.recogniser.name == "hybrid"
    assert selection.reason.startswith("hybrid recogniser (clip v") and "both models loaded" in selection.reason
    assert " on onnx + face v" in selection.reason  # the default runtime, said at start-up
    assert len(selection.recogniser.people) == 30


def test_clip_version_from_other_weights_is_refused(clip_trained_home: Path, tmp_path: Path, detector, embedder) -> None:
    other = write_random_weights(tmp_path / "other.pt", seed=1)
    ctx = context(clip_settings(clip_trained_home, other, recogniser="clip"), detector, embedder)
    with pytest.raises(KioskError, match="run `kiosk retrain`"):
        load_recogniser(ctx)
