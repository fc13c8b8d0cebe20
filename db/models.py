"""The kiosk's schema: people, their face samples, model versions, and the audit trail.

Portable SQLAlchemy 2.0 types only (no SQLite-specific columns), so a multi-door site can
run the same schema on PostgreSQL. Times are stored as timezone-aware UTC.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Named constraints keep Alembic batch migrations and PostgreSQL happy alike.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, also on SQLite, which keeps no zone of its own."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Person(Base):
    """Someone enrolled at this site, with optional validity limits on their access."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime())
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # [{"days": [0..6], "start": "HH:MM", "end": "HH:MM"}, ...]; empty means any time.
    weekly_windows: Mapped[list[Any]] = mapped_column(default=list)

    samples: Mapped[list[FaceSample]] = relationship(
        back_populates="person", cascade="all, delete-orphan", passive_deletes=True
    )


class FaceSample(Base):
    """One aligned face crop stored on disk, traceable to the photo it came from."""

    __tablename__ = "face_samples"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(Text)
    crop_path: Mapped[str] = mapped_column(Text)
    det_score: Mapped[float] = mapped_column(Float)
    box: Mapped[list[Any]] = mapped_column()
    keypoints: Mapped[list[Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    person: Mapped[Person] = relationship(back_populates="samples")
    features: Mapped[list[FeatureCache]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True
    )


class FeatureCache(Base):
    """A frozen encoder's feature vector for one sample, so retrains never re-encode photos.

    ``encoder`` names the encoder and its weights (for example ``face:<sha256 of onnx>`` or
    ``clip:RN50:openai``); a different encoder simply misses the cache.
    """

    __tablename__ = "feature_cache"
    __table_args__ = (UniqueConstraint("sample_id", "encoder"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("face_samples.id", ondelete="CASCADE"), index=True)
    encoder: Mapped[str] = mapped_column(String(200))
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class TrainingRun(Base):
    """One model version: a recogniser trained on the samples present at the time."""

    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    recogniser: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="running")  # running|complete|failed|cancelled
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Per-epoch history and final figures: {"epochs": [{"epoch", "loss", "train_acc", "val_acc"}], ...}
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    artifact_path: Mapped[str | None] = mapped_column(Text)
    artifact_sha256: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)


class AccessEvent(Base):
    """One decision at the door: a grant or a refusal, hash-chained to the one before."""

    __tablename__ = "access_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    door: Mapped[str] = mapped_column(String(100))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), index=True)
    person_name: Mapped[str | None] = mapped_column(String(200))
    granted: Mapped[bool] = mapped_column(Boolean)
    probability: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String(200))
    recogniser: Mapped[str | None] = mapped_column(String(20))
    model_version: Mapped[int | None] = mapped_column(Integer)
    track_id: Mapped[int | None] = mapped_column(Integer)
    tailgating: Mapped[bool] = mapped_column(Boolean, default=False)
    thumbnail_path: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    row_hash: Mapped[str | None] = mapped_column(String(64))
    # issue 14: the track's fused p(live) where a liveness check ran (grants and its refusals)
    liveness: Mapped[float | None] = mapped_column(Float)
    # Site database only: the event's id at its door, so an upload sent twice is stored once.
    door_event_id: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (UniqueConstraint("door", "door_event_id", name="uq_access_events_door_event"),)

class AdminAction(Base):
    """Something an administrator did (enrol, remove, retrain, change a threshold)."""

    __tablename__ = "admin_actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    subject: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    row_hash: Mapped[str | None] = mapped_column(String(64))


class AuditAnchor(Base):
    """Where a purged audit chain now starts: the hash of the last row `kiosk audit purge` removed."""

    __tablename__ = "audit_anchors"

    chain: Mapped[str] = mapped_column(String(50), primary_key=True)  # access_events | admin_actions
    through_id: Mapped[int] = mapped_column(Integer)
    row_hash: Mapped[str] = mapped_column(String(64))
    purged_rows: Mapped[int] = mapped_column(Integer, default=0)
    time: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Calibration(Base):
    """A score-to-probability mapping fitted for one model version, and the threshold set."""

    __tablename__ = "calibrations"

    id: Mapped[int] = mapped_column(primary_key=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    training_run_id: Mapped[int | None] = mapped_column(ForeignKey("training_runs.id", ondelete="SET NULL"))
    recogniser: Mapped[str] = mapped_column(String(20))
    method: Mapped[str] = mapped_column(String(50))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    threshold: Mapped[float] = mapped_column(Float)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)


# --- liveness (issue 14) ---


class LivenessCalibration(Base):
    """A liveness threshold `kiosk calibrate` chose for a target BPCER on this site's live faces."""

    __tablename__ = "liveness_calibrations"

    id: Mapped[int] = mapped_column(primary_key=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    detector: Mapped[str] = mapped_column(String(200))  # which models scored (their file digests)
    target_bpcer: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Evaluation(Base):
    """An evaluation run of the paper's protocol, kept so an auditor can see what was measured."""

    __tablename__ = "evaluations"

    id: Mapped[int] = mapped_column(primary_key=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    training_run_id: Mapped[int | None] = mapped_column(ForeignKey("training_runs.id", ondelete="SET NULL"))
    recogniser: Mapped[str] = mapped_column(String(20))
    dataset: Mapped[str] = mapped_column(Text)
    threshold: Mapped[float] = mapped_column(Float)
    results: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AdminCredential(Base):
    """An admin's PIN or password, stored only as a slow hash, with its lockout state."""

    __tablename__ = "admin_credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    secret_hash: Mapped[str] = mapped_column(Text)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


# --- site database (issue 18): a site of many doors on one PostgreSQL --------------------------


class Door(Base):
    """A door registered at the site, with what it last reported (the site's view of its health)."""

    __tablename__ = "doors"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    location: Mapped[str] = mapped_column(String(200), default="")
    role_name: Mapped[str] = mapped_column(String(63), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_contact: Mapped[datetime | None] = mapped_column(UTCDateTime())
    replica_version: Mapped[int | None] = mapped_column(BigInteger)
    outbox_depth: Mapped[int | None] = mapped_column(Integer)


class SiteState(Base):
    """One row. At the site: a counter every change to a replicated table bumps (a trigger).
    At a door: the site version its replica holds."""

    __tablename__ = "site_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


class SiteUploadState(Base):
    """One row, at a door: its access events up to this local id are stored at the site."""

    __tablename__ = "site_upload_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    sent_through: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SiteArtifact(Base):
    """One file of a model version's artifact folder, stored at the site so doors can fetch it."""

    __tablename__ = "site_artifacts"

    training_run_id: Mapped[int] = mapped_column(ForeignKey("training_runs.id", ondelete="CASCADE"), primary_key=True)
    path: Mapped[str] = mapped_column(String(500), primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)


class ThresholdOverride(Base):
    """One row (id 1), once an admin sets the door threshold on a shared database (a site).

    A single door keeps its override in ``<home>/threshold.json``; at a site the override must
    reach every door, so it is a row the doors replicate (kiosk/door/threshold_override.py).
    """

    __tablename__ = "threshold_overrides"

    id: Mapped[int] = mapped_column(primary_key=True)
    threshold: Mapped[float] = mapped_column(Float)
    set_by: Mapped[str] = mapped_column(String(100))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime())


# --- access-panel credentials (issue 16) ---------------------------------------------------


class Credential(Base):
    """The card number a person's face stands for when the kiosk is a reader on an access panel.

    ``card`` is the canonical text ("FACILITY:NUMBER", or "NUMBER" for a raw number) and is what
    makes a credential unique per site; ``facility`` is None for a raw number. Deleted with the
    person (the foreign key cascades).
    """

    __tablename__ = "credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), unique=True)
    card: Mapped[str] = mapped_column(String(40), unique=True)
    facility: Mapped[int | None] = mapped_column(Integer)
    number: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# --- MQTT (issue 17): the outbox and the command nonces ---------------------------------------
class OutboxMessage(Base):
    """An event waiting for (or acknowledged by) the MQTT broker, written in the event's own transaction."""

    __tablename__ = "mqtt_outbox"

    id: Mapped[int] = mapped_column(primary_key=True)  # publication order
    event_id: Mapped[int | None] = mapped_column(Integer, index=True)
    topic: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)  # the broker's acknowledgement


class CommandNonce(Base):
    """A signed command's nonce, kept for its time window so a replay is refused, across restarts too."""

    __tablename__ = "mqtt_command_nonces"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
