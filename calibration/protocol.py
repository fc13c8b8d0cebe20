"""The paper's deployment protocol on a folder of people, run through the kiosk's own parts.

For each person a deterministic 80/20 split (the same seed rule as training's
``split_samples``), enrolment of the 80% into a throw-away data directory (the real Enroller,
a real SQLite file), training through ``retrain`` and loading through ``load_recogniser``
exactly as the door does, then every held-back photo and every stranger photo is one attempt
at the door. The paper's "c" setting (a softmax over the enrolled, trained on the same
embeddings) is run beside the recognisers for comparison.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from calibration.metrics import Attempt, rank1_accuracy, rates_at
from calibration.softmax_baseline import NAME as SOFTMAX
from calibration.softmax_baseline import SoftmaxBaseline
from db.models import Evaluation as EvaluationRow
from kiosk.admin.enrolment import STORED, Enroller
from kiosk.config import DatabaseConfig
from kiosk.context import KioskContext
from kiosk.errors import ImageError, KioskError
from kiosk.recognition.base import FaceCrops, Recogniser
from kiosk.recognition.face_recogniser import NAME as FACE
from kiosk.recognition.face_recogniser import FaceRecogniser, enrolment_scores
from kiosk.storage.samples import Sample, cached_features, load_samples, split_samples
from kiosk.vision.face_alignment import CLIP_SIZE, align
from kiosk.vision.face_detection import primary_face
from kiosk.vision.images import image_files, read_image

Progress = Callable[[str], None]
BATCH = 64
DESCRIPTIONS = {
    FACE: "face embedder, cosine to per-person templates, fitted probability (paper's 'o' setting)",
    SOFTMAX: "softmax classifier over the enrolled, on the same face embeddings (paper's 'c' setting)",
    "clip": "CLIP, text tower fine-tuned on one prompt per person (the paper's method)",
    "hybrid": "CLIP with the face embedder as verifier",
}
RANDOM_CLIP_TAGS = ("", "none", "random")


@dataclass
class RecogniserResult:
    name: str
    description: str
    attempts: list[Attempt]
    train_accuracy: float | None
    model_version: int | None
    in_claims: bool = True  # False when its weights are random: shown, never claimed
    enrolled_genuine: np.ndarray | None = None  # leave-one-out own-person scores
    enrolled_impostor: np.ndarray | None = None  # best other person, own person removed
    closest_people: list[tuple[str, str, float]] = field(default_factory=list)

    def summary(self, threshold: float) -> dict[str, Any]:
        r = rates_at(self.attempts, threshold)
        return {
            "threshold": threshold,
            "fpir": r.fpir,
            "fnir": r.fnir,
            "misidentification": r.misidentification,
            "accuracy": r.accuracy,
            "train_accuracy": self.train_accuracy,
            "attempts": r.attempts,
            "strangers": r.strangers,
        }


@dataclass
class Evaluation:
    dataset: Path
    strangers: Path
    threshold: float
    seed: int
    validation_fraction: float
    people: int = 0
    enrolled: int = 0
    enrol_failed: list[str] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)
    results: dict[str, RecogniserResult] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The machine-readable result: {"results": {recogniser: figures}} (rates as fractions)."""
        return {"results": {name: r.summary(self.threshold) for name, r in self.results.items()}}


@dataclass(frozen=True)
class DoorFace:
    truth: str | None
    source: str
    crops: FaceCrops | None  # None: no face found (a failure to acquire)


def photo_files(folder: Path) -> list[Path]:
    """Image files in a person's folder, in natural order (2.jpg before 10.jpg)."""
    return image_files(folder, recursive=False)


def person_folders(dataset: Path, what: str) -> dict[str, list[Path]]:
    if not dataset.is_dir():
        raise KioskError(f"{what} folder does not exist: {dataset}")
    people = {d.name: photo_files(d) for d in sorted(dataset.iterdir()) if d.is_dir() and not d.name.startswith(".")}
    people = {name: files for name, files in people.items() if files}
    if not people:
        raise KioskError(f"{what} folder holds no person folders with photos: {dataset}")
    return people


def split_dataset(people: dict[str, list[Path]], validation_fraction: float, seed: int) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """Per person: (enrol, held back), by ``split_samples``' rule on the photos' sha256."""
    samples = [
        Sample(i, name, hashlib.sha256(path.read_bytes()).hexdigest(), path)
        for name, files in people.items()
        for i, path in enumerate(files)
    ]
    train, held = split_samples(samples, validation_fraction, seed)
    enrol: dict[str, list[Path]] = {name: [] for name in people}
    back: dict[str, list[Path]] = {name: [] for name in people}
    for s in train:
        enrol[s.person].append(s.crop_path)
    for s in held:
        back[s.person].append(s.crop_path)
    return {k: sorted(v, key=lambda p: people[k].index(p)) for k, v in enrol.items()}, {k: sorted(v, key=lambda p: people[k].index(p)) for k, v in back.items()}


def evaluate(
    site: KioskContext,
    dataset: Path,
    strangers: Path,
    recognisers: list[str],
    progress: Progress | None = None,
) -> Evaluation:
    """Run the protocol; the site's own data directory is only read for settings and models."""
    say = progress or (lambda _m: None)
    cfg = site.settings
    people = person_folders(dataset, "dataset")
    outsiders = person_folders(strangers, "strangers")
    clash = sorted(set(people) & set(outsiders))
    if clash:
        raise KioskError(f"stranger folders share names with enrolled people: {', '.join(clash[:5])}")
    result = Evaluation(dataset, strangers, cfg.recognition.threshold, cfg.training.seed, cfg.training.validation_fraction)
    enrol, held = split_dataset(people, cfg.training.validation_fraction, cfg.training.seed)
    with tempfile.TemporaryDirectory(prefix="kiosk-eval-") as tmp:
        settings = cfg.model_copy(
            update={
                "home": Path(tmp) / "home",
                "database": DatabaseConfig(busy_timeout_ms=cfg.database.busy_timeout_ms),
                "recognition": cfg.recognition.model_copy(),
            }
        )
        ctx = KioskContext(settings)
        ctx.__dict__["detector"] = site.detector
        ctx.__dict__["embedder"] = site.embedder
        try:
            _enrol(ctx, enrol, result, say)
            faces = _door_faces(ctx, held, outsiders, result, say)
            for name in recognisers:
                _run_recogniser(ctx, name, faces, result, say)
            if FACE in result.results:
                _run_softmax(ctx, faces, result, say)
        finally:
            ctx.engine.dispose()
    if not result.results:
        raise KioskError("no recogniser could be evaluated: " + "; ".join(f"{k}: {v}" for k, v in result.unavailable.items()))
    return result


def _enrol(ctx: KioskContext, enrol: dict[str, list[Path]], result: Evaluation, say: Progress) -> None:
    enroller = Enroller(ctx.sessions, ctx.detector, ctx.crops, ctx.settings.detection.max_side)
    for i, (name, files) in enumerate(enrol.items(), start=1):
        summary = enroller.enroll(name, files, actor="eval")
        result.enrol_failed += [f"{r.path}: {r.reason}" for r in summary.results if r.status != STORED]
        result.enrolled += summary.count(STORED)
        result.people += summary.count(STORED) > 0
        say(f"enrol {i}/{len(enrol)} {name}: {summary.count(STORED)} samples")


def _door_faces(ctx: KioskContext, held: dict[str, list[Path]], outsiders: dict[str, list[Path]], result: Evaluation, say: Progress) -> list[DoorFace]:
    """Detect and align every attempt photo once; the recognisers share the crops."""
    items = [(name, p) for name, files in held.items() for p in files] + [(None, p) for files in outsiders.values() for p in files]
    faces: list[DoorFace] = []
    for i, (truth, path) in enumerate(items, start=1):
        source = f"{path.parent.name}/{path.name}"
        try:
            image = read_image(path, ctx.settings.detection.max_side)
        except ImageError as exc:
            result.no_face.append(f"{source}: {exc}")
            faces.append(DoorFace(truth, source, None))
            continue
        face = primary_face(ctx.detector.detect(image).faces, image.shape)
        if face is None:
            result.no_face.append(f"{source}: no face found")
        crops = None if face is None else FaceCrops.from_crop(align(image, face.keypoints, CLIP_SIZE))
        faces.append(DoorFace(truth, source, crops))
        if i % 50 == 0 or i == len(items):
            say(f"attempt photos {i}/{len(items)}")
    return faces


def _run_recogniser(ctx: KioskContext, name: str, faces: list[DoorFace], result: Evaluation, say: Progress) -> None:
    from kiosk.recognition.selection import load_recogniser
    from kiosk.training.retrain import retrain

    ctx.settings.recognition.recogniser = name  # type: ignore[assignment]
    try:
        trained = retrain(ctx, lambda p: say(f"[{p.recogniser}] {p.stage} {p.message}".rstrip()), actor="eval")
        model = load_recogniser(ctx).recogniser
    except KioskError as exc:
        result.unavailable[name] = str(exc)
        say(f"{name}: not available: {exc}")
        return
    random = name in ("clip", "hybrid") and (
        bool(getattr(model, "random_weights", False)) or ctx.settings.models.clip_pretrained.lower() in RANDOM_CLIP_TAGS
    )
    if random:
        result.warnings.append(f"{name}: CLIP weights are RANDOM; its figures measure nothing and are left out of every claim")
    rows = _predict_all(model, faces, say)
    attempts = [_attempt(f, row) for f, row in zip(faces, rows)]
    train_acc = trained.metrics.get(name, {}).get("train_accuracy")
    res = RecogniserResult(
        name, DESCRIPTIONS.get(name, name), attempts,
        float(train_acc) if isinstance(train_acc, (int, float)) else None, model.model_version, in_claims=not random,
    )
    if isinstance(model, FaceRecogniser):
        feats, labels = _enrolled_features(ctx)
        genuine, impostor = enrolment_scores(feats, labels)
        res.enrolled_genuine, res.enrolled_impostor = genuine[:, 0], impostor[:, 0]
        res.closest_people = _closest_templates(model)
    result.results[name] = res
    r1 = rank1_accuracy(attempts)
    say(f"{name}: model v{model.model_version}, rank-1 {r1:.3f} over {sum(a.mated for a in attempts)} enrolled attempts")


def _predict_all(model: Recogniser, faces: list[DoorFace], say: Progress) -> list[list[tuple[str, float, float]] | None]:
    found = [f for f in faces if f.crops is not None]
    preds: list[list[tuple[str, float, float]]] = []
    for start in range(0, len(found), BATCH):
        batch = model.predict([f.crops for f in found[start : start + BATCH]], top_k=len(model.people))  # type: ignore[misc]
        preds += [[(c.person, c.probability, c.score) for c in p.top] for p in batch]
        say(f"[{model.name}] attempts {min(start + BATCH, len(found))}/{len(found)}")
    it = iter(preds)
    return [next(it) if f.crops is not None else None for f in faces]


def _attempt(face: DoorFace, top: list[tuple[str, float, float]] | None) -> Attempt:
    if not top:
        return Attempt(face.truth, None, 0.0, None, None, face.source)
    own = next((s for p, _, s in top if p == face.truth), None)
    person, prob, score = top[0]
    return Attempt(face.truth, person, prob, score, own, face.source)


def _enrolled_features(ctx: KioskContext) -> tuple[np.ndarray, list[str]]:
    samples = load_samples(ctx.sessions, ctx.settings.crops_dir)
    feats = cached_features(ctx.sessions, ctx.crops, samples, ctx.embedder.encoder_key, ctx.embedder.embed)
    return feats, [s.person for s in samples]


def _run_softmax(ctx: KioskContext, faces: list[DoorFace], result: Evaluation, say: Progress) -> None:
    feats, labels = _enrolled_features(ctx)
    try:
        model = SoftmaxBaseline(feats, labels)
    except ValueError as exc:
        result.unavailable[SOFTMAX] = str(exc)
        return
    found = [f for f in faces if f.crops is not None]
    emb = ctx.embedder
    vecs = emb.embed([f.crops.at(emb.size) for f in found]) if found else np.zeros((0, feats.shape[1]))  # type: ignore[union-attr]
    probs = model.probabilities(vecs)
    rows = iter(probs)
    attempts = []
    for f in faces:
        if f.crops is None:
            attempts.append(_attempt(f, None))
            continue
        row = next(rows)
        order = np.argsort(-row)
        attempts.append(_attempt(f, [(model.people[i], float(row[i]), float(row[i])) for i in order]))
    result.results[SOFTMAX] = RecogniserResult(SOFTMAX, DESCRIPTIONS[SOFTMAX], attempts, model.train_accuracy, None)
    say(f"{SOFTMAX}: rank-1 {rank1_accuracy(attempts):.3f}")


def _closest_templates(model: FaceRecogniser, n: int = 5) -> list[tuple[str, str, float]]:
    """The enrolled pairs whose templates are most alike: where a misidentification is likeliest."""
    sims = model.templates @ model.templates.T
    i, j = np.triu_indices(len(model.people), k=1)
    order = np.argsort(-sims[i, j])[:n]
    return [(model.people[i[k]], model.people[j[k]], float(sims[i[k], j[k]])) for k in order]


def record(site: KioskContext, evaluation: Evaluation) -> list[int]:
    """One Evaluation row per recogniser in the site's database, beside the model then in force."""
    from kiosk.recognition.selection import registry

    ids = []
    reg = registry(site)
    in_force = {name: reg.in_force(name) for name in evaluation.results}
    with site.sessions.begin() as session:
        for name, res in evaluation.results.items():
            row = EvaluationRow(
                training_run_id=None,
                recogniser=name,
                dataset=str(evaluation.dataset.resolve()),
                threshold=evaluation.threshold,
                results={
                    **res.summary(evaluation.threshold),
                    "strangers_dir": str(evaluation.strangers.resolve()),
                    "evaluation_model_version": res.model_version,
                    "site_model_in_force": run.id if (run := in_force[name]) else None,
                    "in_claims": res.in_claims,
                    "seed": evaluation.seed,
                },
            )
            session.add(row)
            session.flush()
            ids.append(row.id)
    return ids
