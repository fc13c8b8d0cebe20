"""Fine-tuning CLIP's text tower on the enrolled people: the paper's method, past its 10-person wall.

The paper's recipe: one prompt per person from a template, image tower frozen, only the text
tower trained, cross-entropy over logit_scale x cosine(image, text), AdamW with weight decay,
cosine annealing, a deterministic 80/20 split, batches of 16 images.

Why it did not scale: every batch re-encoded every person's prompt at the full 77-token
context with the autograd graph kept, so memory grew with the number of people. Here each
optimiser step instead
  1. encodes all prompts once, cut to the longest prompt (exact; see clip_model.py), with no
     graph, chunk by chunk;
  2. takes the loss gradient with respect to those text features (an (n_people, d) array);
  3. re-runs the text tower one chunk at a time with the graph and back-propagates that
     gradient into the weights (gradient caching: by the chain rule, summing the chunks'
     contributions equals back-propagating the whole loss).
Peak memory is the weights, the optimiser state, the features and one chunk's graph, so it
no longer grows with the number of people beyond the features themselves. The image features
come from the cache (the image tower is frozen), never re-encoded.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kiosk.config import TrainingConfig
from kiosk.recognition.clip_model import ClipModel, TokenisedPrompts, normalise
from kiosk.recognition.clip_recogniser import NAME
from kiosk.recognition.model_registry import ModelRegistry
from kiosk.storage.samples import Sample, split_samples
from kiosk.training.progress import RetrainCancelled, RetrainProgress

NOTHING_TO_VALIDATE = "nothing to validate: no person has enough samples to hold one back, all are used for training"


def class_prompts(template: str, people: list[str]) -> list[str]:
    return [template.format(name=person) for person in people]


def batch_size_for(config: TrainingConfig) -> int:
    return config.large_batch_size if config.large_batch else config.batch_size


@torch.no_grad()
def text_features(clip: ClipModel, prompts: TokenisedPrompts, chunk: int) -> torch.Tensor:
    """Raw text features for every prompt, chunk by chunk, without an autograd graph."""
    return torch.cat([clip.encode_text(prompts[i : i + chunk]) for i in range(0, len(prompts), chunk)])


def image_text_loss(images: torch.Tensor, text: torch.Tensor, labels: torch.Tensor, scale: float) -> torch.Tensor:
    """Cross-entropy over logit_scale x cosine(image, text); images are unit vectors already."""
    return F.cross_entropy(scale * images @ normalise(text).T, labels)


def accumulate_gradients(
    clip: ClipModel,
    prompts: TokenisedPrompts,
    images: torch.Tensor,
    labels: torch.Tensor,
    scale: float,
    chunk: int,
) -> float:
    """Add d(loss)/d(text-tower weights) to the weights' .grad by gradient caching.

    Returns the batch loss.
    """
    feats = text_features(clip, prompts, chunk).requires_grad_(True)
    loss = image_text_loss(images, feats, labels, scale)
    (grad,) = torch.autograd.grad(loss, feats)
    for start in range(0, len(prompts), chunk):
        out = clip.encode_text(prompts[start : start + chunk])
        out.backward(grad[start : start + chunk])
    return float(loss.detach())


@dataclass
class FineTuned:
    """What a fine-tuning run produced: the new text weights and per-class unit text embeddings."""

    text_state: dict[str, torch.Tensor]
    class_embeddings: np.ndarray
    epochs: list[dict[str, Any]] = field(default_factory=list)


def accuracy(images: np.ndarray, labels: np.ndarray, class_embeddings: np.ndarray) -> float | None:
    if len(labels) == 0:
        return None
    return float(np.mean(np.argmax(images @ class_embeddings.T, axis=1) == labels))


def fine_tune(
    clip: ClipModel,
    prompts: list[str],
    train_images: np.ndarray,
    train_labels: np.ndarray,
    val_images: np.ndarray,
    val_labels: np.ndarray,
    config: TrainingConfig,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> FineTuned:
    """Train the text tower on (unit image feature, class index) pairs; the model is restored after.

    The ClipModel's own text weights are put back when this returns or raises, so the loaded
    model always holds the configured base weights and every retrain starts from them (same
    seed, same samples: same result). `on_step` may raise to cancel between steps.
    """
    torch.manual_seed(config.seed)
    shuffle = torch.Generator().manual_seed(config.seed)
    tokens = clip.tokenise(prompts)
    images = torch.from_numpy(np.ascontiguousarray(train_images, dtype=np.float32))
    labels = torch.from_numpy(np.asarray(train_labels, dtype=np.int64))
    batch = batch_size_for(config)
    steps_per_epoch = math.ceil(len(labels) / batch)
    total_steps = steps_per_epoch * config.epochs
    scale = clip.logit_scale
    params = clip.text_parameters()
    original = clip.text_state()
    decay = [p for n, p in params.items() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in params.items() if not (p.ndim >= 2 and "embedding" not in n)]
    optimiser = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=total_steps)
    for p in params.values():
        p.requires_grad_(True)
    clip.model.train()
    clip.model.visual.eval()  # frozen tower: batch-norm statistics stay as loaded
    step = 0
    result = FineTuned(text_state={}, class_embeddings=np.zeros((0, 0), dtype=np.float32))
    try:
        for epoch in range(1, config.epochs + 1):
            started = time.perf_counter()
            order = torch.randperm(len(labels), generator=shuffle)
            loss_sum = 0.0
            for start in range(0, len(order), batch):
                idx = order[start : start + batch]
                loss = accumulate_gradients(clip, tokens, images[idx], labels[idx], scale, config.text_chunk_size)
                optimiser.step()
                schedule.step()
                optimiser.zero_grad(set_to_none=True)
                loss_sum += loss * len(idx)
                step += 1
                if on_step:
                    on_step(step, total_steps)
            embeddings = normalise(text_features(clip, tokens, config.text_chunk_size)).numpy()
            figures = {
                "epoch": epoch,
                "loss": loss_sum / len(labels),
                "train_accuracy": accuracy(train_images, train_labels, embeddings),
                "val_accuracy": accuracy(val_images, val_labels, embeddings),
                "seconds": round(time.perf_counter() - started, 3),
            }
            result.epochs.append(figures)
            if on_epoch:
                on_epoch(figures)
        result.text_state = clip.text_state()
        result.class_embeddings = embeddings.astype(np.float32)
        return result
    finally:
        for p in params.values():
            p.requires_grad_(False)
            p.grad = None
        clip.load_text_state(original)
        clip.model.eval()


def train_clip_model(
    registry: ModelRegistry,
    clip: ClipModel,
    samples: list[Sample],
    features: np.ndarray,
    config: TrainingConfig,
    template: str,
    progress: Callable[[RetrainProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> int:
    """Fine-tune on the stored samples' cached image features and register the new version.

    The version is in force only once complete; a failure or cancel marks the run and leaves
    the version in force as it was.
    """
    report = progress or (lambda _p: None)
    stop = should_stop or (lambda: False)
    batch = batch_size_for(config)
    train, val = split_samples(samples, config.validation_fraction, config.seed)
    run_id = registry.start(
        NAME,
        {
            "encoder": clip.encoder_key,
            "samples": len(samples),
            "split_digest": _digest(s.sha256 for s in val),
            "template": template,
            "seed": config.seed,
            "epochs": config.epochs,
            "batch_size": batch,
            "learning_rate": config.learning_rate,
            "weight_decay": config.weight_decay,
            "validation_fraction": config.validation_fraction,
        },
    )
    try:
        if not samples:
            raise ValueError("no face samples are enrolled")
        people = sorted({s.person for s in samples})
        index = {p: i for i, p in enumerate(people)}
        row = {s.id: i for i, s in enumerate(samples)}
        note = "" if val else NOTHING_TO_VALIDATE
        report(RetrainProgress(NAME, "split", len(train), len(samples), message=note or f"{len(val)} held back for validation"))

        def pick(group: list[Sample]) -> tuple[np.ndarray, np.ndarray]:
            rows = np.array([row[s.id] for s in group], dtype=np.int64)
            return features[rows].reshape(len(group), features.shape[1]), np.array([index[s.person] for s in group], dtype=np.int64)

        (ti, tl), (vi, vl) = pick(train), pick(val)

        def on_step(done: int, total: int) -> None:
            report(RetrainProgress(NAME, "step", done, total))
            if stop():
                raise RetrainCancelled("retrain cancelled; the model in force is unchanged")

        def on_epoch(figures: dict[str, Any]) -> None:
            registry.record_epoch(run_id, figures)
            report(
                RetrainProgress(
                    NAME, "epoch", figures["epoch"], config.epochs, epoch=figures["epoch"], loss=figures["loss"],
                    train_accuracy=figures["train_accuracy"], val_accuracy=figures["val_accuracy"],
                )
            )

        prompts = class_prompts(template, people)
        tuned = fine_tune(clip, prompts, ti, tl, vi, vl, config, on_epoch, on_step)
        staging = registry.staging_dir(run_id)
        torch.save(tuned.text_state, staging / "text_tower.pt")
        np.save(staging / "class_embeddings.npy", tuned.class_embeddings)
        meta = {
            "encoder": clip.encoder_key,
            "people": people,
            "prompts": prompts,
            "logit_scale": clip.logit_scale,
        }
        (staging / "meta.json").write_text(json.dumps(meta, indent=2))
        last = tuned.epochs[-1]
        metrics = {
            "people": len(people),
            "samples": len(samples),
            "train_samples": len(train),
            "val_samples": len(val),
            "train_accuracy": last["train_accuracy"],
            "val_accuracy": last["val_accuracy"],
            "validation": note or "held-back split",
        }
        registry.complete(run_id, staging, metrics)
    except BaseException as exc:
        cancelled = isinstance(exc, (RetrainCancelled, KeyboardInterrupt))
        registry.fail(run_id, str(exc) or type(exc).__name__, "cancelled" if cancelled else "failed")
        raise
    report(RetrainProgress(NAME, "done", 1, 1, message=f"clip model v{run_id}"))
    return run_id


def _digest(sample_hashes: Iterable[str]) -> str:
    """Identifies a split: the sorted validation samples' photo hashes, hashed."""
    return hashlib.sha256("\n".join(sorted(sample_hashes)).encode()).hexdigest()[:16]
