"""Applying a fitted score calibration at run time: the door's half of `kiosk calibrate`.

calibration/fitting.py fits a map from raw scores to probabilities on the site's evidence and
stores it as a Calibration row for the model version; this module turns that row back into the
map and wraps the loaded recogniser with it. Kept in recognition/ so the door never imports the
fitting code (scipy, scikit-learn, the evaluation protocol).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select

from db.models import Calibration
from kiosk.context import KioskContext
from kiosk.errors import KioskError
from kiosk.recognition.base import Candidate, FaceCrops, Prediction, Recogniser
from kiosk.recognition.face_recogniser import ScoreModel


class Calibrator:
    """A fitted map from rows of raw scores to (candidate probabilities, unknown probability)."""

    method: str

    def __call__(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    @property
    def params(self) -> dict[str, Any]:
        raise NotImplementedError


class MarginLogistic(Calibrator):
    method = "logistic"

    def __init__(self, model: ScoreModel):
        self.model = model

    def __call__(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probs = self.model(scores)
        return probs, 1.0 - probs.max(axis=1)

    @property
    def params(self) -> dict[str, Any]:
        return self.model.as_dict()


class Isotonic(Calibrator):
    method = "isotonic"

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x, self.y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def __call__(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = np.asarray(scores, dtype=np.float64)
        probs = np.interp(np.where(np.isfinite(s), s, self.x[0]), self.x, self.y)
        probs = np.where(np.isfinite(s), probs, 0.0)
        return probs, 1.0 - probs.max(axis=1)

    @property
    def params(self) -> dict[str, Any]:
        return {"x": self.x.tolist(), "y": self.y.tolist()}


class Temperature(Calibrator):
    method = "temperature"

    def __init__(self, temperature: float, unknown_logit: float):
        self.temperature, self.unknown_logit = temperature, unknown_logit

    def __call__(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = np.exp(log_softmax(with_unknown_logit(np.asarray(scores, dtype=np.float64), self.temperature, self.unknown_logit)))
        return p[:, :-1], p[:, -1]

    @property
    def params(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "unknown_logit": self.unknown_logit}


def with_unknown_logit(scores: np.ndarray, temperature: float, unknown: float) -> np.ndarray:
    return np.column_stack([scores / temperature, np.full(len(scores), unknown)])


def log_softmax(z: np.ndarray) -> np.ndarray:
    top = np.max(z, axis=1, keepdims=True)
    return z - top - np.log(np.exp(z - top).sum(axis=1, keepdims=True))


def calibrator_from(method: str, params: dict[str, Any]) -> Calibrator:
    if method == MarginLogistic.method:
        return MarginLogistic(ScoreModel(params["slope"], params["offset"], params.get("margin_weight", 0.0)))
    if method == Isotonic.method:
        return Isotonic(np.array(params["x"]), np.array(params["y"]))
    if method == Temperature.method:
        return Temperature(params["temperature"], params["unknown_logit"])
    raise KioskError(f"unknown calibration method {method!r}: the door stays shut; run `kiosk calibrate` again")


class CalibratedRecogniser(Recogniser):
    """A loaded recogniser whose probabilities come from a stored Calibration row."""

    def __init__(self, inner: Recogniser, calibrator: Calibrator, calibration_id: int | None):
        self.inner = inner
        self.calibrator = calibrator
        self.calibration_id = calibration_id
        self.name = inner.name
        self.model_version = inner.model_version

    @property
    def people(self) -> list[str]:
        return self.inner.people

    def predict(self, faces: list[FaceCrops], top_k: int = 5) -> list[Prediction]:
        preds = self.inner.predict(faces, top_k=len(self.people))
        if not preds:
            return []
        rows = score_rows(self.people, preds)
        probs, unknown = self.calibrator(rows)
        out = []
        for row, p, u in zip(rows, probs, unknown):
            order = np.lexsort((-row, -p))[:top_k]
            top = [Candidate(self.people[i], float(p[i]), float(row[i])) for i in order]
            out.append(Prediction(self.name, self.model_version, top, unknown=float(u)))
        return out


def score_rows(people: list[str], preds: list[Prediction]) -> np.ndarray:
    """Raw scores in people order, from predictions that list every candidate."""
    col = {p: i for i, p in enumerate(people)}
    rows = np.full((len(preds), len(people)), -np.inf)
    for r, pred in enumerate(preds):
        for c in pred.top:
            rows[r, col[c.person]] = c.score
    return rows


def latest_calibration(ctx: KioskContext, recogniser: str, model_version: int | None) -> Calibration | None:
    with ctx.sessions() as session:
        return session.scalars(
            select(Calibration)
            .where(Calibration.recogniser == recogniser, Calibration.training_run_id == model_version)
            .order_by(Calibration.id.desc())
            .limit(1)
        ).first()


def apply_calibration(ctx: KioskContext, model: Recogniser) -> Recogniser:
    """The model with the newest calibration stored for its version, or unchanged if none."""
    row = latest_calibration(ctx, model.name, model.model_version)
    if row is None:
        return model
    return CalibratedRecogniser(model, calibrator_from(row.method, row.params), row.id)


def uncalibrated(model: Recogniser) -> Recogniser:
    return model.inner if isinstance(model, CalibratedRecogniser) else model
