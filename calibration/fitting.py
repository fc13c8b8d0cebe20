"""`kiosk calibrate`: fit raw scores to probabilities for the model in force, store it, apply it.

The evidence is the site's own: each enrolled sample as a genuine attempt (for the face
recogniser with its own sample left out of its template), and as a stranger's attempt with
its own person removed from the enrolled (leave-one-person-out): the site's enrolled-versus-
enrolled scores are the best evidence of how close its strangers will come, from the same
camera. Photos of real strangers (``--strangers``) add to that when the site has them.

Methods, all with an explicit probability that the face is nobody the door may name:
- ``logistic``: the face recogniser's own model refitted, P(true | cosine, margin over the
  runner-up); unknown = 1 - the best candidate's probability.
- ``isotonic``: a monotone step map from a candidate's raw score to probability (any
  recogniser whose scores are comparable across people, e.g. embedding cosines).
- ``temperature``: CLIP's logits divided by a temperature T, with an extra "nobody enrolled"
  logit u in the softmax: p = softmax([logits / T, u]).

Each fit is one Calibration row tied to the model version (TrainingRun) and to the threshold
in force, so an auditor can see which mapping and threshold decided at the door when. The
door applies the newest row for the version it loads (kiosk.recognition.score_calibration).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calibration.metrics import Attempt, expected_calibration_error, rates_at, rates_grid, reliability
from db.models import Calibration
from kiosk.context import KioskContext
from kiosk.errors import KioskError
from kiosk.recognition.base import FaceCrops, Prediction, Recogniser
from kiosk.recognition.face_recogniser import FaceRecogniser, fit_score_model, margins
from kiosk.recognition.score_calibration import (
    Calibrator,
    Isotonic,
    MarginLogistic,
    Temperature,
    log_softmax,
    score_rows,
    uncalibrated,
    with_unknown_logit,
)
from kiosk.storage.samples import cached_features, load_samples

METHODS = ("logistic", "isotonic", "temperature")
DEFAULT_METHOD = {"face": "logistic", "clip": "temperature", "hybrid": "isotonic"}
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ScoreTable:
    """Raw scores of attempts against every enrolled person; -inf where a person is left out.

    ``truth`` holds each row's true column, or -1 for a stranger (or a person left out).
    """

    people: list[str]
    scores: np.ndarray
    truth: np.ndarray

    def __add__(self, other: ScoreTable) -> ScoreTable:
        return ScoreTable(self.people, np.vstack([self.scores, other.scores]), np.concatenate([self.truth, other.truth]))


def _prior_weights(genuine: np.ndarray, stranger_prior: float) -> np.ndarray:
    """Sample weights that make the strangers' share of the evidence equal the stated prior."""
    n_g, n_s = genuine.sum(), len(genuine) - genuine.sum()
    if n_g == 0 or n_s == 0:
        return np.ones_like(genuine)
    return np.where(genuine > 0, (1 - stranger_prior) / n_g, stranger_prior / n_s) * len(genuine)


def _fit_logistic(table: ScoreTable, stranger_prior: float) -> MarginLogistic:
    top = np.argmax(table.scores, axis=1)
    rows = np.arange(len(top))
    x = np.column_stack([table.scores[rows, top], margins(table.scores)[rows, top]])
    right = top == table.truth
    model, _ = fit_score_model(x[right], x[~right], stranger_prior)
    return MarginLogistic(model)


def _fit_isotonic(table: ScoreTable, stranger_prior: float) -> Isotonic:
    from sklearn.isotonic import IsotonicRegression

    top = np.argmax(table.scores, axis=1)
    s = table.scores[np.arange(len(top)), top]
    right = (top == table.truth).astype(np.float64)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, right, sample_weight=_prior_weights(right, stranger_prior))
    return Isotonic(iso.X_thresholds_, iso.y_thresholds_)


def _fit_temperature(table: ScoreTable, stranger_prior: float) -> Temperature:
    from scipy.optimize import minimize

    target = np.where(table.truth >= 0, table.truth, table.scores.shape[1])
    weights = _prior_weights((table.truth >= 0).astype(np.float64), stranger_prior)

    def loss(theta: np.ndarray) -> float:
        logp = log_softmax(with_unknown_logit(table.scores, float(np.exp(theta[0])), float(theta[1])))
        return float(-(weights * logp[np.arange(len(target)), target]).sum() / weights.sum())

    start = np.array([0.0, float(np.median(table.scores.max(axis=1)))])
    best = minimize(loss, start, method="Nelder-Mead", options={"xatol": 1e-4, "fatol": 1e-7, "maxiter": 4000})
    return Temperature(float(np.exp(best.x[0])), float(best.x[1]))


def fit(method: str, table: ScoreTable, stranger_prior: float) -> Calibrator:
    kinds: dict[str, Callable[[ScoreTable, float], Calibrator]] = {
        MarginLogistic.method: _fit_logistic, Isotonic.method: _fit_isotonic, Temperature.method: _fit_temperature,
    }
    if method not in kinds:
        raise KioskError(f"calibration method must be one of {', '.join(METHODS)}, got {method!r}")
    if not (table.truth >= 0).any() or not (table.truth < 0).any():
        raise KioskError("calibration needs both genuine and stranger evidence: enrol at least two people")
    return kinds[method](table, stranger_prior)


def enrolment_table(ctx: KioskContext, model: Recogniser, progress: Progress) -> ScoreTable:
    """Genuine and leave-one-person-out rows from the samples of the people the model knows."""
    people = model.people
    col = {p: i for i, p in enumerate(people)}
    samples = [s for s in load_samples(ctx.sessions, ctx.settings.crops_dir) if s.person in col]
    if not samples:
        raise KioskError("no enrolled samples of the people in the model in force")
    truth = np.array([col[s.person] for s in samples])
    if isinstance(model, FaceRecogniser):
        feats = cached_features(ctx.sessions, ctx.crops, samples, ctx.embedder.encoder_key, ctx.embedder.embed)
        scores = (feats @ model.templates.T).astype(np.float64)
        genuine = scores.copy()
        sums = np.zeros((len(people), feats.shape[1]))
        np.add.at(sums, truth, feats)
        counts = np.bincount(truth, minlength=len(people))
        keep = counts[truth] > 1
        for i in np.nonzero(keep)[0]:
            own = sums[truth[i]] - feats[i]
            genuine[i, truth[i]] = float(feats[i] @ own / max(np.linalg.norm(own), 1e-12))
        genuine, g_truth = genuine[keep], truth[keep]
    else:
        progress("the model was trained on these samples: its genuine evidence is optimistic")
        preds: list[Prediction] = []
        for start in range(0, len(samples), 64):
            crops = [FaceCrops.from_crop(ctx.crops.read(s.crop_path)) for s in samples[start : start + 64]]
            preds += model.predict(crops, top_k=len(people))
            progress(f"enrolled samples {min(start + 64, len(samples))}/{len(samples)}")
        scores = score_rows(people, preds)
        genuine, g_truth = scores, truth
    impostor = scores.copy()
    impostor[np.arange(len(truth)), truth] = -np.inf
    return ScoreTable(people, genuine, g_truth) + ScoreTable(people, impostor, np.full(len(truth), -1))


def stranger_table(ctx: KioskContext, model: Recogniser, folder: Path, progress: Progress) -> ScoreTable:
    """Rows for photos of people who are not enrolled (any folder layout)."""
    from kiosk.vision.face_alignment import CLIP_SIZE, align
    from kiosk.vision.face_detection import primary_face
    from kiosk.vision.images import image_files, read_image

    if not folder.is_dir():
        raise KioskError(f"strangers folder does not exist: {folder}")
    files = image_files(folder)
    known = {p.name for p in folder.iterdir() if p.is_dir()} & set(model.people)
    if known:
        raise KioskError(f"strangers folder holds enrolled people: {', '.join(sorted(known)[:5])}")
    crops = []
    for i, path in enumerate(files, start=1):
        image = read_image(path, ctx.settings.detection.max_side)
        face = primary_face(ctx.detector.detect(image).faces, image.shape)
        if face is not None:
            crops.append(FaceCrops.from_crop(align(image, face.keypoints, CLIP_SIZE)))
        if i % 50 == 0 or i == len(files):
            progress(f"stranger photos {i}/{len(files)}")
    if not crops:
        raise KioskError(f"no faces found in the strangers folder: {folder}")
    scores = score_rows(model.people, model.predict(crops, top_k=len(model.people)))
    return ScoreTable(model.people, scores, np.full(len(scores), -1))


def table_attempts(table: ScoreTable, calibrator: Calibrator) -> list[Attempt]:
    """The table's rows as door attempts under a calibrator (for reliability figures)."""
    probs, _ = calibrator(table.scores)
    top = np.argmax(probs, axis=1)
    return [
        Attempt(table.people[t] if t >= 0 else None, table.people[k], float(probs[r, k]), float(table.scores[r, k]))
        for r, (t, k) in enumerate(zip(table.truth, top))
    ]


@dataclass(frozen=True)
class CalibrationResult:
    calibration_id: int
    recogniser: str
    model_version: int | None
    method: str
    params: dict[str, Any]
    threshold: float
    metrics: dict[str, Any]
    attempts: list[Attempt]  # the evidence as door attempts, for the reliability diagram


def calibrate(
    ctx: KioskContext,
    method: str | None = None,
    strangers: Path | None = None,
    progress: Progress | None = None,
    actor: str = "cli",
) -> CalibrationResult:
    """Fit, store and return the calibration of the model in force (the door uses it from now)."""
    from db.models import AdminAction
    from kiosk.recognition.selection import load_recogniser

    say = progress or (lambda _m: None)
    model = uncalibrated(load_recogniser(ctx).recogniser)
    chosen = method or DEFAULT_METHOD.get(model.name, "isotonic")
    table = enrolment_table(ctx, model, say)
    source = "enrolled-versus-enrolled (leave-one-person-out)"
    if strangers is not None:
        table = table + stranger_table(ctx, model, strangers, say)
        source += f" + strangers from {strangers}"
    prior = ctx.settings.calibration.stranger_prior
    calibrator = fit(chosen, table, prior)
    attempts = table_attempts(table, calibrator)
    bins = reliability(attempts)
    at = rates_at(attempts, ctx.settings.recognition.threshold)
    metrics = {
        "genuine": int((table.truth >= 0).sum()),
        "strangers": int((table.truth < 0).sum()),
        "stranger_evidence": source,
        "stranger_prior": prior,
        "ece": expected_calibration_error(bins),
        "fpir": at.fpir,  # at the threshold in force
        "fnir": at.fnir,
        "curve": rates_grid(attempts),
        "reliability": [vars(b) for b in bins],
    }
    row = Calibration(
        training_run_id=model.model_version,
        recogniser=model.name,
        method=calibrator.method,
        params=calibrator.params,
        threshold=ctx.settings.recognition.threshold,
        metrics=metrics,
    )
    with ctx.sessions.begin() as session:
        session.add(row)
        session.flush()
        session.add(AdminAction(actor=actor, action="calibrate", subject=model.name, details={"calibration": row.id, "model_version": model.model_version, "method": calibrator.method}))
        row_id = row.id
    return CalibrationResult(row_id, model.name, model.model_version, calibrator.method, calibrator.params, row.threshold, metrics, attempts)
