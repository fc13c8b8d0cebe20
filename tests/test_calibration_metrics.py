"""Door figures on hand-made attempts whose answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calibration.fitting import ScoreTable, fit
from calibration.metrics import Attempt, curve, expected_calibration_error, rank1_accuracy, rates_at, reliability, threshold_for_fpir
from kiosk.recognition.face_recogniser import margins
from kiosk.recognition.score_calibration import Isotonic, Temperature

ATTEMPTS = [
    Attempt("A", "A", 0.90),  # granted, right
    Attempt("B", "B", 0.70),  # right name, refused at 0.8
    Attempt("C", "A", 0.95),  # misidentified and let in
    Attempt("D", None, 0.0),  # no face found: a refusal
    Attempt(None, "A", 0.85),  # stranger let in
    Attempt(None, "B", 0.30),  # stranger refused
]


def test_rates_at_threshold() -> None:
    r = rates_at(ATTEMPTS, 0.8)
    assert (r.attempts, r.mated, r.strangers) == (6, 4, 2)
    assert r.fpir == pytest.approx(1 / 2)
    assert r.fnir == pytest.approx(3 / 4)  # only A granted as themselves
    assert r.misidentification == pytest.approx(1 / 4)
    assert r.refusal == pytest.approx(2 / 4)  # B and D
    assert r.fnir == pytest.approx(r.misidentification + r.refusal)
    assert r.accuracy == pytest.approx(2 / 6)  # A granted, one stranger refused
    assert r.paper_fp == pytest.approx(2 / 6)  # the stranger and C let in wrongly
    assert r.paper_fn == pytest.approx(2 / 4)


def test_rates_at_zero_threshold_grant_every_face() -> None:
    r = rates_at(ATTEMPTS, 0.0)
    assert r.fpir == 1.0 and r.refusal == pytest.approx(1 / 4)  # only the faceless attempt refused


def test_rank1_ignores_threshold() -> None:
    assert rank1_accuracy(ATTEMPTS) == pytest.approx(2 / 4)


def test_curve_and_threshold_for_target_fpir() -> None:
    c = curve(ATTEMPTS)
    assert list(c.thresholds[:-1]) == [0.3, 0.7, 0.85, 0.9, 0.95]
    assert c.fpir[-1] == 0.0 and c.fnir[-1] == 1.0  # above every probability nobody gets in
    assert threshold_for_fpir(ATTEMPTS, 0.5) == pytest.approx(0.7)
    assert threshold_for_fpir(ATTEMPTS, 0.0) == pytest.approx(0.9)  # next probability above the stranger's 0.85
    assert threshold_for_fpir([a for a in ATTEMPTS if a.mated], 0.0) is None


def test_reliability_bins_and_ece() -> None:
    attempts = [Attempt("A", "A", 0.95)] * 3 + [Attempt("A", "B", 0.95)] + [Attempt(None, "A", 0.05)] * 4
    bins = reliability(attempts, bins=10)
    top, low = bins[9], bins[0]
    assert (top.count, top.predicted, top.observed) == (4, pytest.approx(0.95), 0.75)
    assert (low.count, low.predicted, low.observed) == (4, pytest.approx(0.05), 0.0)
    assert math.isnan(bins[5].predicted)
    assert expected_calibration_error(bins) == pytest.approx((4 * 0.2 + 4 * 0.05) / 8)


def test_margins_over_the_runner_up() -> None:
    assert np.allclose(margins(np.array([0.9, 0.5, 0.2])), [0.4, -0.4, -0.7])
    assert np.allclose(margins(np.array([[0.3, 0.3]])), [[0.0, 0.0]])  # a tie names nobody clearly


def test_temperature_gives_an_explicit_unknown_probability() -> None:
    probs, unknown = Temperature(1.0, 0.0)(np.array([[0.0, 0.0]]))
    assert np.allclose(probs, 1 / 3) and np.allclose(unknown, 1 / 3)


def test_temperature_fit_sends_flat_rows_to_unknown() -> None:
    rng = np.random.default_rng(0)
    genuine = rng.normal(0, 1, (200, 5))
    truth = rng.integers(0, 5, 200)
    genuine[np.arange(200), truth] += 6.0
    strangers = rng.normal(0, 1, (200, 5))
    table = ScoreTable(list("abcde"), np.vstack([genuine, strangers]), np.concatenate([truth, -np.ones(200, int)]))
    cal = fit("temperature", table, 0.5)
    assert isinstance(cal, Temperature)
    p_g, u_g = cal(genuine)
    p_s, u_s = cal(strangers)
    assert np.mean(np.argmax(p_g, axis=1) == truth) > 0.95
    assert np.median(u_g) < 0.1 and np.median(u_s) > 0.9
    assert np.allclose(p_g.sum(axis=1) + u_g, 1.0)


def test_isotonic_is_monotone_and_bounded() -> None:
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.1], [0.2, 0.25]])
    table = ScoreTable(["a", "b"], scores, np.array([0, 0, -1, -1]))
    cal = fit("isotonic", table, 0.5)
    assert isinstance(cal, Isotonic)
    probs, _ = cal(np.array([[0.1, 0.5, 0.95]]))
    assert np.all(np.diff(probs[0]) >= 0) and probs.min() >= 0 and probs.max() <= 1
