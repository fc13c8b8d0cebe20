"""The face-embedding recogniser: per-person templates, cosine similarity, a fitted probability.

Training builds one template per person (the normalised mean of their sample embeddings) and
fits P(genuine | cosine) from the site's own enrolment: each sample against its own person's
template built without it (genuine), and against the closest other person's template
(impostor: what a look-alike stranger at the door would score). So a face far from everyone
gets a low probability, and the threshold is a probability rather than a raw cosine.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kiosk.face_embedder import FaceEmbedder
from kiosk.model_registry import ModelRegistry
from kiosk.recognition import Candidate, FaceCrops, Prediction, Recogniser
from kiosk.samples import Sample

NAME = "face"
# Used only when the enrolment holds no genuine pair or a single person (nothing to fit on):
# probability 0.5 at cosine 0.5, steep, so the door stays shut for anything but a close match.
FALLBACK_SLOPE, FALLBACK_CENTRE = 25.0, 0.5


@dataclass(frozen=True)
class ScoreModel:
    """Logistic map from cosine to probability: p = 1 / (1 + exp(-(slope * s + offset)))."""

    slope: float
    offset: float

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.slope * np.asarray(scores, dtype=np.float64) + self.offset)))


def templates_from(features: np.ndarray, labels: list[str]) -> tuple[list[str], np.ndarray]:
    people = sorted(set(labels))
    index = {p: i for i, p in enumerate(people)}
    sums = np.zeros((len(people), features.shape[1]), dtype=np.float64)
    np.add.at(sums, [index[p] for p in labels], features)
    return people, _normalise(sums).astype(np.float32)


def enrolment_scores(features: np.ndarray, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out genuine cosines and nearest-other-person impostor cosines, per sample."""
    people, templates = templates_from(features, labels)
    index = np.array([people.index(p) for p in labels])
    sums = np.zeros((len(people), features.shape[1]), dtype=np.float64)
    np.add.at(sums, index, features)
    counts = np.bincount(index, minlength=len(people))
    genuine = []
    for i, f in enumerate(features):
        if counts[index[i]] > 1:
            genuine.append(float(f @ _normalise(sums[index[i]] - f)))
    sims = features @ templates.T
    sims[np.arange(len(labels)), index] = -np.inf
    impostor = sims.max(axis=1) if len(people) > 1 else np.zeros(0)
    return np.asarray(genuine), np.asarray(impostor, dtype=np.float64)


def fit_score_model(genuine: np.ndarray, impostor: np.ndarray) -> tuple[ScoreModel, str]:
    if len(genuine) == 0 or len(impostor) == 0:
        return ScoreModel(FALLBACK_SLOPE, -FALLBACK_SLOPE * FALLBACK_CENTRE), "fallback"
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([genuine, impostor])[:, None]
    y = np.concatenate([np.ones(len(genuine)), np.zeros(len(impostor))])
    lr = LogisticRegression(C=1000.0, class_weight="balanced").fit(x, y)
    return ScoreModel(float(lr.coef_[0, 0]), float(lr.intercept_[0])), "logistic"


class FaceRecogniser(Recogniser):
    name = NAME

    def __init__(self, embedder: FaceEmbedder, people: list[str], templates: np.ndarray, score_model: ScoreModel, model_version: int | None):
        self.embedder = embedder
        self._people = people
        self.templates = templates
        self.score_model = score_model
        self.model_version = model_version

    @property
    def people(self) -> list[str]:
        return self._people

    def scores(self, faces: list[FaceCrops]) -> np.ndarray:
        """Cosine of each face (rows) to each person's template (columns)."""
        if not faces:
            return np.zeros((0, len(self._people)), dtype=np.float32)
        feats = self.embedder.embed([f.at(self.embedder.size) for f in faces])
        return feats @ self.templates.T

    def predict(self, faces: list[FaceCrops], top_k: int = 5) -> list[Prediction]:
        return [self.prediction_from_scores(row, top_k) for row in self.scores(faces)]

    def prediction_from_scores(self, row: np.ndarray, top_k: int = 5) -> Prediction:
        probs = self.score_model(row)
        order = np.argsort(-row)[:top_k]
        top = [Candidate(self._people[i], float(probs[i]), float(row[i])) for i in order]
        return Prediction(NAME, self.model_version, top)

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
        return cls(embedder, list(meta["people"]), data["templates"], ScoreModel(meta["slope"], meta["offset"]), model_version)


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
        genuine, impostor = enrolment_scores(features, labels)
        score_model, method = fit_score_model(genuine, impostor)
        if progress:
            progress(f"{len(people)} people, {len(samples)} samples, calibration: {method}")
        staging = registry.staging_dir(run_id)
        np.savez(staging / "templates.npz", templates=templates)
        meta: dict[str, Any] = {
            "encoder": embedder.encoder_key,
            "people": people,
            "slope": score_model.slope,
            "offset": score_model.offset,
            "calibration": method,
        }
        (staging / "meta.json").write_text(json.dumps(meta, indent=2))
        metrics = {
            "people": len(people),
            "samples": len(samples),
            "calibration": method,
            "genuine_mean": float(genuine.mean()) if len(genuine) else None,
            "impostor_max": float(impostor.max()) if len(impostor) else None,
            "train_accuracy": _loo_accuracy(features, labels),
        }
        registry.complete(run_id, staging, metrics)
    except BaseException as exc:
        registry.fail(run_id, str(exc) or type(exc).__name__, "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed")
        raise
    return run_id


def _loo_accuracy(features: np.ndarray, labels: list[str]) -> float | None:
    """Leave-one-out identification accuracy over samples whose person has another sample."""
    people = sorted(set(labels))
    index = np.array([people.index(p) for p in labels])
    sums = np.zeros((len(people), features.shape[1]), dtype=np.float64)
    np.add.at(sums, index, features)
    counts = np.bincount(index, minlength=len(people))
    hits = total = 0
    for i, f in enumerate(features):
        if counts[index[i]] < 2:
            continue
        own = sums.copy()
        own[index[i]] -= f
        sims = _normalise(own) @ f
        hits += int(np.argmax(sims) == index[i])
        total += 1
    return hits / total if total else None


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True).clip(min=1e-12)
