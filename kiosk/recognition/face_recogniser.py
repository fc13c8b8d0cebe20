"""The face-embedding recogniser: per-person templates, cosine similarity, a fitted probability.

Training builds one template per person (the normalised mean of their sample embeddings) and
fits P(named person is really there | cosine, margin) from the site's own enrolment, where the
margin is the cosine's lead over the runner-up person. Genuine evidence: each sample against
its own person's template built without it. Stranger evidence: each sample against everyone
else, as if its person were not enrolled (leave-one-person-out), which is what a look-alike
stranger at this site's camera would score. The margin matters because a site's camera and
background raise every cosine of a stranger together, but not the lead of one person over the
next. So a face far from everyone, or near several people at once, gets a low probability, and
the threshold is a probability rather than a raw cosine.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kiosk.recognition.base import FaceCrops, MatrixRecogniser
from kiosk.recognition.face_embedder import FaceEmbedder
from kiosk.recognition.model_registry import ModelRegistry
from kiosk.storage.samples import Sample

NAME = "face"
# Used only when the enrolment holds no genuine pair or a single person (nothing to fit on):
# probability 0.5 at cosine 0.5, steep, so the door stays shut for anything but a close match.
FALLBACK_SLOPE, FALLBACK_CENTRE = 25.0, 0.5
# The runner-up cosine assumed when only one person is enrolled: an unrelated face scores ~0.
NO_RUNNER_UP = 0.0
# Cosines held at once while gathering the enrolment's evidence (samples x people, float32: 32 MB).
EVIDENCE_BLOCK_CELLS = 8_000_000
# Evidence rows of each kind the calibration is fitted on, at most (see fit_score_model).
FIT_ROWS = 20_000


def margins(scores: np.ndarray) -> np.ndarray:
    """Each cell's lead over the best other cell in its row (negative for all but the best)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.shape[-1] < 2:
        return s - NO_RUNNER_UP
    order = np.sort(s, axis=-1)
    best, second = order[..., -1:], order[..., -2:-1]
    return s - np.where(s >= best, second, best)


@dataclass(frozen=True)
class ScoreModel:
    """Logistic map from (cosine, margin over the runner-up) to the probability of a true match.

    p = 1 / (1 + exp(-(slope * s + margin_weight * m + offset))), applied to every cell of a
    row of cosines (one row per face, one cell per enrolled person).
    """

    slope: float
    offset: float
    margin_weight: float = 0.0

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        return self.from_features(s, margins(s))

    def from_features(self, scores: np.ndarray, margin: np.ndarray) -> np.ndarray:
        z = self.slope * np.asarray(scores, dtype=np.float64) + self.margin_weight * np.asarray(margin) + self.offset
        return 1.0 / (1.0 + np.exp(-z))

    def as_dict(self) -> dict[str, float]:
        return {"slope": self.slope, "margin_weight": self.margin_weight, "offset": self.offset}


def templates_from(features: np.ndarray, labels: list[str]) -> tuple[list[str], np.ndarray]:
    people, _index, sums = _person_sums(features, labels)
    return people, _normalise(sums).astype(np.float32)


def _person_sums(features: np.ndarray, labels: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """People in name order, each sample's person index, and each person's sum of features (float64).

    Summed by sorting the samples by person and adding runs (np.add.reduceat): at tens of
    thousands of samples far faster than an unbuffered scatter-add.
    """
    names, index = np.unique(np.asarray(labels, dtype=object), return_inverse=True)
    index = index.reshape(-1)
    order = np.argsort(index, kind="stable")
    starts = np.searchsorted(index[order], np.arange(len(names)))
    sums = np.add.reduceat(np.asarray(features, dtype=np.float64)[order], starts, axis=0) if len(order) else np.zeros((0, features.shape[1]))
    return [str(n) for n in names], index, sums


def enrolment_scores(features: np.ndarray, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and stranger evidence from the enrolment, as (n, 2) arrays of (cosine, margin).

    Genuine: each sample against its own person's template built without it (leave-one-out),
    its margin taken over the best other person. Stranger: each sample with its own person
    removed (leave-one-person-out): its best other person's cosine and the lead of that person
    over the next. A person with a single sample gives no genuine row.
    """
    genuine, impostor, _hits = _evidence(features, labels)
    return genuine, impostor


def _evidence(features: np.ndarray, labels: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Genuine rows, stranger rows, and for each genuine row whether it ranks its own person first.

    Computed in blocks of samples against every template (vectorised, bounded memory), so a
    refresh at thousands of people costs one pass of matrix products rather than a Python loop
    over samples.
    """
    people, index, sums = _person_sums(features, labels)
    templates = _normalise(sums).astype(np.float32)
    counts = np.bincount(index, minlength=len(people))
    block = max(1, EVIDENCE_BLOCK_CELLS // max(1, len(people)))
    genuine: list[np.ndarray] = []
    impostor: list[np.ndarray] = []
    hits: list[np.ndarray] = []
    for start in range(0, len(features), block):
        f = features[start : start + block]
        own = index[start : start + block]
        rows = np.arange(len(f))
        sims = f @ templates.T  # float32, as the door scores; the few values kept are widened below
        sims[rows, own] = -np.inf  # every other person's cosine, own column masked
        if len(people) > 1:
            first = sims.argmax(axis=1)
            best = sims[rows, first].astype(np.float64)
            if len(people) > 2:
                sims[rows, first] = -np.inf  # two passes of max: far cheaper than a partition of the block
                second = sims.max(axis=1).astype(np.float64)
            else:
                second = np.full(len(f), NO_RUNNER_UP)
        else:
            best = second = np.full(len(f), NO_RUNNER_UP)
        if len(people) > 1:
            impostor.append(np.stack([best, best - second], axis=1))
        keep = counts[own] > 1
        if keep.any():
            rest = sums[own[keep]] - f[keep]
            loo = np.einsum("ij,ij->i", f[keep].astype(np.float64), rest) / np.linalg.norm(rest, axis=1).clip(min=1e-12)
            runner_up = best[keep]
            genuine.append(np.stack([loo, loo - runner_up], axis=1))
            hits.append(loo > runner_up if len(people) > 1 else np.ones(len(loo), dtype=bool))
    return (
        np.concatenate(genuine).reshape(-1, 2) if genuine else np.zeros((0, 2)),
        np.concatenate(impostor).reshape(-1, 2) if impostor else np.zeros((0, 2)),
        np.concatenate(hits) if hits else np.zeros(0, dtype=bool),
    )


def fit_score_model(genuine: np.ndarray, impostor: np.ndarray, stranger_prior: float = 0.5) -> tuple[ScoreModel, str]:
    """Logistic regression of genuine vs stranger evidence, weighted to the stated prior.

    ``stranger_prior`` is the share of door attempts expected from people who are not the
    named person; 0.5 (even odds) weighs both kinds of evidence equally whatever their counts.
    """
    if len(genuine) == 0 or len(impostor) == 0:
        return ScoreModel(FALLBACK_SLOPE, -FALLBACK_SLOPE * FALLBACK_CENTRE), "fallback"
    from sklearn.linear_model import LogisticRegression

    # Three parameters need no more than a fixed, seeded sample of each kind: a site of
    # thousands of people refits in a second, and the class weights below keep the prior.
    genuine, impostor = _at_most(genuine, FIT_ROWS), _at_most(impostor, FIT_ROWS)

    x = np.concatenate([genuine, impostor])
    y = np.concatenate([np.ones(len(genuine)), np.zeros(len(impostor))])
    weights = {1.0: (1 - stranger_prior) * len(y) / len(genuine), 0.0: stranger_prior * len(y) / len(impostor)}
    lr = LogisticRegression(C=1000.0, class_weight=weights).fit(x, y)
    return ScoreModel(float(lr.coef_[0, 0]), float(lr.intercept_[0]), float(lr.coef_[0, 1])), "logistic-margin"


def _at_most(rows: np.ndarray, limit: int) -> np.ndarray:
    """``rows`` unchanged if few enough, else a fixed seeded random choice of ``limit`` of them."""
    if len(rows) <= limit:
        return rows
    return rows[np.sort(np.random.default_rng(0).choice(len(rows), limit, replace=False))]


class FaceRecogniser(MatrixRecogniser):
    name = NAME

    def __init__(self, embedder: FaceEmbedder, people: list[str], templates: np.ndarray, score_model: ScoreModel, model_version: int | None):
        super().__init__(people, templates, model_version)
        self.embedder = embedder
        self.score_model = score_model

    @property
    def templates(self) -> np.ndarray:
        return self.classes

    def encode(self, faces: list[FaceCrops]) -> np.ndarray:
        return self.embedder.embed([f.at(self.embedder.size) for f in faces])

    def identity_features(self, faces: list[FaceCrops]) -> np.ndarray | None:
        return self.encoded(faces) if faces else None

    def probabilities(self, row: np.ndarray) -> np.ndarray:
        return self.score_model(row)

    @classmethod
    def load(cls, folder: Path, embedder: FaceEmbedder, model_version: int | None) -> FaceRecogniser:
        data = np.load(folder / "templates.npz")
        meta = json.loads((folder / "meta.json").read_text())
        if meta["encoder"] != embedder.encoder_key:
            from kiosk.errors import KioskError

            raise KioskError(
                f"face model v{model_version} was built with {meta['encoder']}, but the configured embedder is "
                f"{embedder.encoder_key}: run `kiosk retrain`"
            )
        model = ScoreModel(meta["slope"], meta["offset"], meta.get("margin_weight", 0.0))
        return cls(embedder, list(meta["people"]), data["templates"], model, model_version)


def train_face_model(
    registry: ModelRegistry,
    embedder: FaceEmbedder,
    samples: list[Sample],
    features: np.ndarray,
    progress: Callable[[str], None] | None = None,
) -> int:
    """Build and register a face model version from the given samples' embeddings."""
    labels = [s.person for s in samples]
    run_id = registry.start(NAME, {"encoder": embedder.encoder_key, "samples": len(samples)})
    try:
        if not samples:
            raise ValueError("no face samples are enrolled")
        people, templates = templates_from(features, labels)
        genuine, impostor, hits = _evidence(features, labels)
        score_model, method = fit_score_model(genuine, impostor)
        if progress:
            progress(f"{len(people)} people, {len(samples)} samples, calibration: {method}")
        staging = registry.staging_dir(run_id)
        np.savez(staging / "templates.npz", templates=templates)
        meta: dict[str, Any] = {
            "encoder": embedder.encoder_key,
            "people": people,
            **score_model.as_dict(),
            "calibration": method,
        }
        (staging / "meta.json").write_text(json.dumps(meta, indent=2))
        metrics = {
            "people": len(people),
            "samples": len(samples),
            "calibration": method,
            "genuine_mean": float(genuine[:, 0].mean()) if len(genuine) else None,
            "impostor_max": float(impostor[:, 0].max()) if len(impostor) else None,
            # leave-one-out identification accuracy over samples whose person has another sample
            "train_accuracy": float(hits.mean()) if len(hits) else None,
        }
        registry.complete(run_id, staging, metrics)
    except BaseException as exc:
        registry.fail(run_id, str(exc) or type(exc).__name__, "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed")
        raise
    return run_id


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True).clip(min=1e-12)
