"""CLIP text-tower fine-tuning: the scaling tricks are exact, training learns, versions are safe.

The model is a tiny open_clip architecture with random weights (tests/tiny_clip.py): these
tests check mechanics on synthetic or real-crop data, never recognition accuracy.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DEV, copy_home, photos
from tiny_clip import clip_paths, clip_settings, context

from kiosk.admin.enrolment import Enroller
from kiosk.config import TrainingConfig
from kiosk.recognition.clip_model import ClipModel
from kiosk.recognition.model_registry import ModelRegistry
from kiosk.training.clip_fine_tune import NAME as CLIP
from kiosk.training.clip_fine_tune import NOTHING_TO_VALIDATE, accumulate_gradients, fine_tune, image_text_loss
from kiosk.training.progress import RetrainCancelled, RetrainProgress
from kiosk.training.retrain import retrain

pytestmark = pytest.mark.usefixtures("single_torch_thread")
pytest_plugins = ["clip_fixtures"]  # its session fixtures: tiny_weights, clip_trained_home

PROMPTS = [
    "This is the image of a person named Ada",
    "This is the image of a person named Grace Brewster Murray Hopper",
    "This is the image of a person named Alan Mathison Turing of Wilmslow",
    "This is the image of a person named Bo",
    "This is the image of a person named Édith Piaf",
    "This is the image of a person named Karen Spärck Jones",
    "This is the image of a person named Tim",
]


@pytest.fixture(scope="module")
def clip(tiny_weights: Path) -> ClipModel:
    return ClipModel.from_settings(clip_paths(tiny_weights))


def test_prompts_cut_to_longest_match_full_context(clip: ClipModel) -> None:
    cut = clip.tokenise(PROMPTS)
    assert cut.ids.shape[1] < clip.model.context_length
    with torch.no_grad():
        full = clip.model.encode_text(clip.tokenizer(PROMPTS))
        short = clip.encode_text(cut)
    assert full.shape == short.shape
    assert float((full - short).abs().max()) < 1e-5


def test_gradient_caching_equals_plain_backprop(clip: ClipModel) -> None:
    params = clip.text_parameters()
    tokens = clip.tokenise(PROMPTS)
    g = torch.Generator().manual_seed(1)
    images = torch.nn.functional.normalize(torch.randn(5, clip.model.text_projection.shape[1], generator=g), dim=-1)
    labels = torch.tensor([0, 3, 6, 2, 3])
    try:
        for p in params.values():
            p.requires_grad_(True)
        image_text_loss(images, clip.encode_text(tokens), labels, clip.logit_scale).backward()
        plain = {n: p.grad.clone() for n, p in params.items()}
        for p in params.values():
            p.grad = None
        accumulate_gradients(clip, tokens, images, labels, clip.logit_scale, chunk=3)  # 7 prompts: chunks 3+3+1
        for name, p in params.items():
            scale = float(plain[name].abs().max()) or 1.0
            assert float((p.grad - plain[name]).abs().max()) / scale < 1e-5, name
        assert float(plain["token_embedding.weight"].abs().sum()) > 0
    finally:
        for p in params.values():
            p.requires_grad_(False)
            p.grad = None


def synthetic(people: int, per_person: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit 'image features' around one random direction per person: separable, not trivially."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, dim))
    labels = np.repeat(np.arange(people), per_person)
    x = centres[labels] / np.sqrt(dim) + 0.12 * rng.normal(size=(len(labels), dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def test_fine_tuning_learns_separable_synthetic_data(clip: ClipModel) -> None:
    images, labels = synthetic(10, 10, clip.model.text_projection.shape[1], seed=3)
    val = np.arange(len(labels)) % 5 == 0  # 20% held back, two per person
    people = [f"Person {chr(65 + i)}{chr(75 + i)}" for i in range(10)]
    prompts = [f"This is the image of a person named {p}" for p in people]
    before = clip.text_state()
    tuned = fine_tune(clip, prompts, images[~val], labels[~val], images[val], labels[val], TrainingConfig(epochs=8, learning_rate=1e-3))
    last = tuned.epochs[-1]
    assert last["train_accuracy"] >= 0.95
    assert last["val_accuracy"] >= 0.5  # chance is 1/10
    assert tuned.epochs[-1]["loss"] < tuned.epochs[0]["loss"]
    assert all(torch.equal(before[n], v) for n, v in clip.text_state().items())  # base weights restored


@pytest.fixture(scope="module")
def small_enrolled(tmp_path_factory: pytest.TempPathFactory, detector, embedder) -> Path:
    """Four DEV people with five photos each: enough for a split and several steps, quick to train."""
    home = tmp_path_factory.mktemp("small") / "home"
    ctx = context(clip_settings(home, "unused"), detector, embedder)
    enroller = Enroller(ctx.sessions, detector, ctx.crops)
    for person in sorted(p for p in DEV.iterdir() if p.is_dir())[:4]:
        assert enroller.enroll(person.name, photos(person)[:5]).ok
    ctx.engine.dispose()
    return home


@pytest.fixture()
def clip_home(tmp_path: Path, small_enrolled: Path) -> Path:
    return copy_home(small_enrolled, tmp_path / "home")


def test_same_seed_same_split_and_first_epoch_loss(clip_home: Path, tiny_weights: Path, detector, embedder) -> None:
    from db.models import TrainingRun

    ctx = context(clip_settings(clip_home, tiny_weights, recogniser="clip", epochs=1, batch_size=4), detector, embedder)
    results = [retrain(ctx) for _ in range(2)]
    ctx.settings.training.seed = 7
    results.append(retrain(ctx))
    assert all(set(r.runs) == {CLIP} for r in results)  # CLIP alone: no face version trained
    with ctx.sessions() as session:
        first, again, other = (session.get_one(TrainingRun, r.runs[CLIP]) for r in results)
    assert first.params["split_digest"] == again.params["split_digest"] != other.params["split_digest"]
    assert first.metrics["epochs"][0]["loss"] == again.metrics["epochs"][0]["loss"]
    assert (first.metrics["train_samples"], first.metrics["val_samples"]) == (16, 4)  # 20% of 5 per person
    assert first.params["encoder"].startswith("clip:clip-tiny:file-")


@pytest.mark.parametrize("how", ["cancel", "fail"])
def test_interrupted_retrain_leaves_previous_version_in_force(clip_home: Path, tiny_weights: Path, detector, embedder, how: str) -> None:
    ctx = context(clip_settings(clip_home, tiny_weights, recogniser="hybrid", epochs=2, batch_size=4), detector, embedder)
    registry = ModelRegistry(ctx.sessions, ctx.settings.artifacts_dir)
    previous = retrain(ctx).runs[CLIP]
    stop = threading.Event()

    def interrupt(p: RetrainProgress) -> None:
        if p.recogniser == CLIP and p.stage == "step" and p.done == 3:
            if how == "cancel":
                stop.set()
            else:
                raise RuntimeError("disk full")

    with pytest.raises(RetrainCancelled if how == "cancel" else RuntimeError):
        retrain(ctx, interrupt, stop)
    in_force = registry.in_force(CLIP)
    assert in_force is not None and in_force.id == previous
    registry.verified_path(in_force)
    from db.models import TrainingRun

    with ctx.sessions() as session:
        last = session.query(TrainingRun).filter_by(recogniser=CLIP).order_by(TrainingRun.id.desc()).first()
    assert last.id != previous and last.status == ("cancelled" if how == "cancel" else "failed")
    assert not list(ctx.settings.artifacts_dir.glob(".staging-*"))


def test_single_shot_people_train_and_say_nothing_to_validate(tmp_path: Path, tiny_weights: Path, detector, embedder) -> None:
    ctx = context(clip_settings(tmp_path / "home", tiny_weights, recogniser="hybrid"), detector, embedder)
    enroller = Enroller(ctx.sessions, detector, ctx.crops)
    people = sorted(p for p in DEV.iterdir() if p.is_dir())[:3]
    for person in people:
        assert enroller.enroll(person.name, photos(person)[:1]).ok
    seen: list[RetrainProgress] = []
    result = retrain(ctx, seen.append)
    metrics = result.metrics[CLIP]
    assert (metrics["people"], metrics["train_samples"], metrics["val_samples"]) == (3, 3, 0)
    assert metrics["validation"] == NOTHING_TO_VALIDATE and metrics["val_accuracy"] is None
    assert any(p.stage == "split" and p.message == NOTHING_TO_VALIDATE for p in seen)
    epochs = [p for p in seen if p.stage == "epoch" and p.recogniser == CLIP]
    assert [p.epoch for p in epochs] == [1, 2] and all(p.val_accuracy is None for p in epochs)
    from kiosk.recognition.selection import load_recogniser

    selection = load_recogniser(ctx)
    assert selection.recogniser.name == "hybrid" and selection.recogniser.people == [p.name for p in people]
