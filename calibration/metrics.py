"""Door figures from attempts: who came, whom the recogniser named, with what probability.

Terms follow ISO/IEC 19795-1 (open-set identification) with the paper's door terms beside them:

- FPIR (false-positive identification-error rate): share of attempts by people not enrolled
  (non-mated) that the door lets in. Paper: a stranger's "false positive".
- FNIR (false-negative identification-error rate): share of attempts by enrolled people
  (mated) in which the door does not grant them as themselves: refused, misidentified, or no
  face found (failure to acquire counts against the system, as in ISO/IEC 19795-1).
- Misidentification rate: share of mated attempts granted as somebody else (part of FNIR;
  at a door it is also a wrongful opening). Refusal rate = FNIR - misidentification.
- Deployment accuracy (the paper's): share of all attempts where the door did the right
  thing (the enrolled granted as themselves, strangers refused).
- Paper FP rate: wrongful openings (strangers let in plus enrolled let in under another
  name) over all attempts; paper FN rate: enrolled people refused over mated attempts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Attempt:
    """One attempt at the door: the truth (None for a stranger) and the recogniser's top answer."""

    truth: str | None
    predicted: str | None  # top candidate; None when no face was found
    probability: float  # the top candidate's probability (0 when no face)
    score: float | None = None  # the top candidate's raw score
    own_score: float | None = None  # raw score for the person really there (mated only)
    source: str = ""  # "<folder>/<file>" of the photo

    @property
    def mated(self) -> bool:
        return self.truth is not None

    @property
    def correct(self) -> bool:
        """The top candidate is the person really there (never true for a stranger)."""
        return self.truth is not None and self.predicted == self.truth


@dataclass(frozen=True)
class Rates:
    threshold: float
    attempts: int
    mated: int
    strangers: int
    fpir: float
    fnir: float
    misidentification: float
    refusal: float
    accuracy: float
    paper_fp: float
    paper_fn: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


def rates_at(attempts: Sequence[Attempt], threshold: float) -> Rates:
    """Every figure at one threshold: a grant is a top candidate with probability >= threshold."""
    mated = [a for a in attempts if a.mated]
    strangers = [a for a in attempts if not a.mated]
    granted = [a.predicted is not None and a.probability >= threshold for a in attempts]
    by_attempt = list(zip(attempts, granted))
    right = sum(g and a.correct for a, g in by_attempt)
    misid = sum(g and a.mated and not a.correct for a, g in by_attempt)
    stranger_in = sum(g and not a.mated for a, g in by_attempt)
    refused = sum((not g) and a.mated for a, g in by_attempt)
    return Rates(
        threshold=threshold,
        attempts=len(attempts),
        mated=len(mated),
        strangers=len(strangers),
        fpir=_ratio(stranger_in, len(strangers)),
        fnir=_ratio(len(mated) - right, len(mated)),
        misidentification=_ratio(misid, len(mated)),
        refusal=_ratio(refused, len(mated)),
        accuracy=_ratio(right + len(strangers) - stranger_in, len(attempts)),
        paper_fp=_ratio(stranger_in + misid, len(attempts)),
        paper_fn=_ratio(refused, len(mated)),
    )


def rates_grid(attempts: Sequence[Attempt], step: float = 0.01) -> dict[str, list[float]]:
    """FPIR and FNIR every ``step`` of threshold, stored with a calibration so a screen can show any threshold's rates."""
    grid = [round(t, 4) for t in np.arange(0.0, 1.0 + step / 2, step)]
    points = [rates_at(attempts, t) for t in grid]
    return {"thresholds": grid, "fpir": [p.fpir for p in points], "fnir": [p.fnir for p in points]}


def grid_rates_at(grid: dict[str, list[float]], threshold: float) -> tuple[float, float]:
    """(FPIR, FNIR) at ``threshold``, interpolated on a grid made by ``rates_grid``."""
    t = np.asarray(grid["thresholds"], dtype=float)
    order = np.argsort(t)
    fpir = float(np.interp(threshold, t[order], np.asarray(grid["fpir"], dtype=float)[order]))
    fnir = float(np.interp(threshold, t[order], np.asarray(grid["fnir"], dtype=float)[order]))
    return fpir, fnir


def rank1_accuracy(attempts: Sequence[Attempt]) -> float:
    """Closed-set identification accuracy of the mated attempts, ignoring the threshold."""
    mated = [a for a in attempts if a.mated]
    return _ratio(sum(a.correct for a in mated), len(mated))


@dataclass(frozen=True)
class Curve:
    """FPIR and FNIR at every threshold where either changes, thresholds ascending."""

    thresholds: np.ndarray
    fpir: np.ndarray
    fnir: np.ndarray


def curve(attempts: Sequence[Attempt]) -> Curve:
    """The DET curve: one point per distinct probability, plus one above every probability."""
    probs = np.array([a.probability for a in attempts if a.predicted is not None], dtype=np.float64)
    cuts = np.unique(np.concatenate([probs, [np.nextafter(probs.max() if len(probs) else 1.0, np.inf)]]))
    points = [rates_at(attempts, float(t)) for t in cuts]
    return Curve(cuts, np.array([p.fpir for p in points]), np.array([p.fnir for p in points]))


def threshold_for_fpir(attempts: Sequence[Attempt], target: float) -> float | None:
    """The lowest threshold whose FPIR is at most ``target`` (None without strangers)."""
    if not any(not a.mated for a in attempts):
        return None
    c = curve(attempts)
    ok = np.nonzero(c.fpir <= target)[0]
    return float(c.thresholds[ok[0]])


@dataclass(frozen=True)
class ReliabilityBin:
    low: float
    high: float
    count: int
    predicted: float  # mean top-candidate probability in the bin
    observed: float  # share of the bin whose top candidate is the person really there


def reliability(attempts: Sequence[Attempt], bins: int = 10) -> list[ReliabilityBin]:
    """Predicted vs observed rate of a true top candidate, in equal-width probability bins."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows = [a for a in attempts if a.predicted is not None]
    probs = np.array([a.probability for a in rows])
    hits = np.array([a.correct for a in rows], dtype=np.float64)
    which = np.clip(np.searchsorted(edges, probs, side="right") - 1, 0, bins - 1)
    out = []
    for b in range(bins):
        sel = which == b
        n = int(sel.sum())
        out.append(
            ReliabilityBin(
                float(edges[b]), float(edges[b + 1]), n,
                float(probs[sel].mean()) if n else float("nan"),
                float(hits[sel].mean()) if n else float("nan"),
            )
        )
    return out


def expected_calibration_error(bins: Sequence[ReliabilityBin]) -> float:
    """Count-weighted mean |observed - predicted| over the bins (ECE)."""
    total = sum(b.count for b in bins)
    gap = sum(b.count * abs(b.observed - b.predicted) for b in bins if b.count)
    return _ratio(gap, total)
