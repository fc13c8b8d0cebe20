"""The stored face samples as training data, and the cache of frozen-encoder features for them."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.models import FaceSample, FeatureCache, Person
from kiosk.storage.crop_store import CropStore


@dataclass(frozen=True)
class Sample:
    id: int
    person: str
    sha256: str
    crop_path: Path


def load_samples(sessions: sessionmaker[Session], crops_dir: Path) -> list[Sample]:
    """Every stored sample, ordered by person name then sample hash (stable across machines)."""
    with sessions() as session:
        rows = session.execute(
            select(FaceSample.id, Person.name, FaceSample.sha256, FaceSample.crop_path).join(Person)
        ).all()
    samples = [Sample(i, name, sha, crops_dir / path) for i, name, sha, path in rows]
    return sorted(samples, key=lambda s: (s.person, s.sha256))


def spread_crops(sessions: sessionmaker[Session], crops: CropStore, limit: int = 64) -> list[np.ndarray]:
    """Up to ``limit`` stored face crops spread evenly over everyone enrolled."""
    samples = load_samples(sessions, crops.crops_dir)
    return [crops.read(s.crop_path) for s in samples[:: max(1, len(samples) // limit)][:limit]]


def split_samples(samples: Sequence[Sample], validation_fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """A deterministic per-person split: same seed and samples, same split, on any machine.

    Every person keeps at least one training sample, so a person enrolled from a single
    photo is still learnt (with nothing of theirs to validate on).
    """
    by_person: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_person[s.person].append(s)
    train: list[Sample] = []
    val: list[Sample] = []
    for person in sorted(by_person):
        group = sorted(by_person[person], key=lambda s: s.sha256)
        key = int.from_bytes(hashlib.sha256(f"{seed}:{person}".encode()).digest()[:8], "little")
        order = np.random.default_rng(key).permutation(len(group))
        n_val = min(int(round(len(group) * validation_fraction)), len(group) - 1)
        val += [group[i] for i in order[:n_val]]
        train += [group[i] for i in order[n_val:]]
    return train, val


def cached_features(
    sessions: sessionmaker[Session],
    crops: CropStore,
    samples: Sequence[Sample],
    encoder: str,
    compute: Callable[[list[np.ndarray]], np.ndarray],
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Features (n, d) for the samples, encoding only those missing from the cache."""
    ids = [s.id for s in samples]
    wanted = set(ids)
    found: dict[int, np.ndarray] = {}
    with sessions() as session:
        # The encoder's whole cache, filtered here: an IN list of every sample id would pass
        # SQLite's limit on bound parameters at a few tens of thousands of samples.
        rows = session.execute(
            select(FeatureCache.sample_id, FeatureCache.vector).where(FeatureCache.encoder == encoder)
        )
        for sid, vec in rows:
            if sid in wanted:
                found[sid] = np.frombuffer(vec, dtype=np.float32)
    missing = [s for s in samples if s.id not in found]
    for start in range(0, len(missing), batch_size):
        batch = missing[start : start + batch_size]
        feats = np.asarray(compute([crops.read(s.crop_path) for s in batch]), dtype=np.float32)
        with sessions.begin() as session:
            for s, f in zip(batch, feats):
                session.add(FeatureCache(sample_id=s.id, encoder=encoder, vector=f.tobytes()))
                found[s.id] = f
        if progress:
            progress(min(start + batch_size, len(missing)), len(missing))
    if not samples:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([found[i] for i in ids])
