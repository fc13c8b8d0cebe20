"""Which liveness check the door runs, at which threshold, and why (the `[liveness]` section).

``enabled = "auto"`` turns the silent check on whenever both model files exist, so a kiosk
given the models is protected without a further setting; "on" makes missing models an error
(the door does not start unprotected); "off" is recognition alone. The threshold is the
configured one, else the newest `kiosk calibrate` choice for these models, else 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.models import LivenessCalibration
from kiosk.config import Settings, require_file
from kiosk.liveness.base import LivenessDetector
from kiosk.storage.checksums import file_sha256

DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class LivenessSetup:
    detector: LivenessDetector
    key: str  # the models' identity, which a calibration is tied to
    threshold: float
    source: str  # where the threshold comes from

    @property
    def reason(self) -> str:
        return f"liveness: {self.detector.name} at threshold {self.threshold:.3f} ({self.source})"


def liveness_wanted(settings: Settings) -> bool:
    """Whether the door should run the silent check (auto: both model files exist)."""
    cfg = settings.liveness
    if cfg.enabled == "off":
        return False
    return cfg.enabled == "on" or (cfg.v2_model.is_file() and cfg.v1se_model.is_file())


def detector_key(settings: Settings) -> str:
    cfg = settings.liveness
    return "silent-face:" + ":".join(file_sha256(p)[:12] for p in (cfg.v2_model, cfg.v1se_model))


def threshold_in_force(settings: Settings, sessions: sessionmaker[Session], key: str) -> tuple[float, str]:
    """The threshold the door applies and where it comes from."""
    if settings.liveness.threshold is not None:
        return settings.liveness.threshold, "configuration"
    with sessions() as session:
        row = session.scalars(
            select(LivenessCalibration)
            .where(LivenessCalibration.detector == key)
            .order_by(LivenessCalibration.id.desc())
            .limit(1)
        ).first()
    if row is not None:
        return row.threshold, f"calibration {row.id} for BPCER {row.target_bpcer:.0%}"
    return DEFAULT_THRESHOLD, "default; run `kiosk calibrate`"


def load_detector(settings: Settings, threads: int = 0) -> LivenessDetector:
    from kiosk.liveness.silent_face import SilentFace

    cfg = settings.liveness
    return SilentFace(
        require_file("liveness.v2_model", cfg.v2_model),
        require_file("liveness.v1se_model", cfg.v1se_model),
        settings.models.onnx_providers,
        threads,
    )


def load_liveness(settings: Settings, sessions: sessionmaker[Session]) -> LivenessSetup | None:
    """The silent check the door runs, or None when liveness is off (or auto without models)."""
    if not liveness_wanted(settings):
        return None
    detector = load_detector(settings)
    key = detector_key(settings)
    threshold, source = threshold_in_force(settings, sessions, key)
    return LivenessSetup(detector, key, threshold, source)
