"""What a retrain reports while it runs and what it returns, shared by every trainer and its callers.

Kept apart from the trainers so the admin screen and the CLI can name these types without
loading a trainer (and CLIP's fine-tune with its torch) first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from kiosk.errors import KioskError


class RetrainCancelled(KioskError):
    """The operator cancelled; the model in force is unchanged."""


@dataclass(frozen=True)
class RetrainProgress:
    """One progress report: which recogniser, which stage, and the figures so far."""

    recogniser: str
    stage: str  # "features" | "epoch" | "done" | a short free-form stage name
    done: int = 0
    total: int = 0
    epoch: int | None = None
    loss: float | None = None
    train_accuracy: float | None = None
    val_accuracy: float | None = None
    message: str = ""


@dataclass
class RetrainResult:
    runs: dict[str, int] = field(default_factory=dict)  # recogniser name -> new model version
    metrics: dict[str, dict[str, object]] = field(default_factory=dict)


Progress = Callable[[RetrainProgress], None]
