"""Liveness figures per ISO/IEC 30107-3, and the liveness threshold a site chooses from them.

One image is one presentation. Its score is the silent check's p(live) on the largest, most
central face; a presentation is accepted as live when the score reaches the threshold.

- APCER (per attack type): the share of a type's attacks accepted; ``apcer_max`` is the
  worst type, the figure ISO/IEC 30107-3 asks a system to be judged by.
- BPCER: the share of live (bona fide) presentations refused.
- A presentation with no face found is refused: an attack that hides the face does not pass,
  a live face not found is a bona fide refusal. Both are counted apart (``no_face``).
- Images are decoded with their EXIF orientation applied. A tight face crop the door's
  detector misses is placed on a larger grey canvas (as a camera frame would hold it) and
  detected again; still nothing is "no face".

Folder layout: under ``--attacks`` each first-level subfolder is an attack type and a
second-level one, where images sit deeper, the source (camera); under ``--bona-fide`` the
first-level subfolder is the source. A manifest (pad-dev's ``manifest.tsv``: columns
``label``, ``attack_type``, ``file`` relative to the manifest) overrides the type per file,
and then the first-level folder on both sides is the source (pad-dev's attack/<source>/).
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from kiosk.context import KioskContext
from kiosk.errors import KioskError
from kiosk.liveness.base import LivenessDetector
from kiosk.vision.face_detection import Detection, Face, FaceDetector, primary_face
from kiosk.vision.images import iter_image_files, read_image

BPCER_TARGETS = (0.01, 0.05, 0.10)
CANVAS = (640, 480)  # width, height of the smallest grey frame a tight crop is placed on
GREY = 127
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Presentation:
    path: Path
    attack_type: str | None  # None: bona fide
    source: str
    score: float | None  # None: no face found
    placed: bool = False  # found only once placed on the grey canvas

    @property
    def is_attack(self) -> bool:
        return self.attack_type is not None

    def accepted(self, threshold: float) -> bool:
        return self.score is not None and self.score >= threshold


def on_canvas(image: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """The image centred on a grey frame at least 640x480 and twice its size; and where it was put (x, y)."""
    h, w = image.shape[:2]
    cw, ch = max(CANVAS[0], 2 * w), max(CANVAS[1], 2 * h)
    canvas = np.full((ch, cw, 3), GREY, dtype=np.uint8)
    y, x = (ch - h) // 2, (cw - w) // 2
    canvas[y : y + h, x : x + w] = image
    return canvas, (x, y)


class CanvasDetector:
    """The door's detector with a second chance for tight crops: the image placed on a grey canvas.

    Faces found on the canvas come back in the image's own coordinates, boxes clipped to it:
    the canvas only helps the detector. The liveness crops are then cut from the image itself
    (shrunk to fit it, as Silent-Face does at a frame's edge), because grey around a face looks
    to these models like the border of a photo. Evaluation and the replayed-door tests use it
    alike, so both judge the same faces.
    """

    def __init__(self, detector: FaceDetector):
        self.detector = detector

    def detect(self, image: np.ndarray) -> Detection:
        found = self.detector.detect(image)
        if found:
            return found
        canvas, (x, y) = on_canvas(image)
        h, w = image.shape[:2]
        shift = np.array([x, y], dtype=np.float32)
        faces = [
            Face(np.clip(f.box - np.tile(shift, 2), 0, [w - 1, h - 1, w - 1, h - 1]).astype(np.float32), f.score, f.keypoints - shift)
            for f in self.detector.detect(canvas).faces
        ]
        return Detection(faces, padded=True) if faces else found


def score_image(detector: CanvasDetector, liveness: LivenessDetector, image: np.ndarray) -> tuple[float | None, bool]:
    """p(live) of the image's main face (None: no face), and whether it took the grey canvas to find it."""
    found = detector.detect(image)
    face = primary_face(found.faces, image.shape)
    if face is None:
        return None, False
    return float(liveness.score(image, [face.box])[0]), found.padded


# --- which files, of which type, from which source -------------------------------------------


def read_manifest(path: Path) -> dict[Path, tuple[str, str]]:
    """pad-dev style manifest: resolved file -> (label, attack_type)."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
    except OSError as exc:
        raise KioskError(f"manifest {path} is unreadable: {exc}") from None
    if not rows or not {"label", "attack_type", "file"} <= set(rows[0]):
        raise KioskError(f"manifest {path} needs tab-separated columns label, attack_type and file")
    return {(path.parent / r["file"]).resolve(): (r["label"], r["attack_type"]) for r in rows}


def find_manifest(attacks: Path, bona_fide: Path) -> Path | None:
    """manifest.tsv in the folder holding both sets (pad-dev's layout), if there is one."""
    for folder in {attacks.resolve().parent, bona_fide.resolve().parent}:
        if (folder / "manifest.tsv").is_file():
            return folder / "manifest.tsv"
    return None


def _parts(root: Path, path: Path) -> tuple[str, ...]:
    return path.relative_to(root).parts[:-1]


def collect(attacks: Path, bona_fide: Path, manifest: Path | None) -> list[tuple[Path, str | None, str]]:
    """(file, attack type or None, source) for every image under both folders."""
    for name, folder in (("--attacks", attacks), ("--bona-fide", bona_fide)):
        if not folder.is_dir():
            raise KioskError(f"{name} folder does not exist: {folder}")
    labels = read_manifest(manifest) if manifest is not None else None
    items: list[tuple[Path, str | None, str]] = []
    for path in iter_image_files(attacks):
        parts = _parts(attacks, path)
        if labels is not None:
            label, kind = labels.get(path.resolve(), ("attack", parts[0] if parts else "attack"))
            if label != "attack":
                raise KioskError(f"{path} is labelled {label} in the manifest but lies under --attacks")
            items.append((path, kind, parts[0] if parts else "-"))
        else:
            if not parts:
                raise KioskError(f"{path} is not in an attack-type subfolder of --attacks (print/, replay/, ...)")
            items.append((path, parts[0], parts[1] if len(parts) > 1 else "-"))
    for path in iter_image_files(bona_fide):
        parts = _parts(bona_fide, path)
        items.append((path, None, parts[0] if parts else "-"))
    if not any(kind is not None for _, kind, _ in items) or not any(kind is None for _, kind, _ in items):
        raise KioskError("need images under both --attacks and --bona-fide")
    return items


def score_presentations(
    items: Sequence[tuple[Path, str | None, str]], detector: CanvasDetector, liveness: LivenessDetector,
    max_side: int = 4096, progress: Progress | None = None,
) -> list[Presentation]:
    out = []
    for i, (path, kind, source) in enumerate(items, start=1):
        score, placed = score_image(detector, liveness, read_image(path, max_side))
        out.append(Presentation(path, kind, source, score, placed))
        if progress is not None and (i % 20 == 0 or i == len(items)):
            progress(f"liveness: {i}/{len(items)} images")
    return out


# --- the figures --------------------------------------------------------------------------------


def _rate(hits: int, total: int) -> float | None:
    return hits / total if total else None


def rates_at(presentations: Sequence[Presentation], threshold: float) -> dict[str, Any]:
    """APCER per attack type, its worst, and BPCER at one threshold (fractions)."""
    by_type: dict[str, list[Presentation]] = defaultdict(list)
    for p in presentations:
        if p.attack_type is not None:
            by_type[p.attack_type].append(p)
    apcer = {kind: _rate(sum(p.accepted(threshold) for p in ps), len(ps)) for kind, ps in sorted(by_type.items())}
    bona = [p for p in presentations if not p.is_attack]
    return {
        "threshold": threshold,
        "bpcer": _rate(sum(not p.accepted(threshold) for p in bona), len(bona)),
        "apcer": apcer,
        "apcer_max": max((r for r in apcer.values() if r is not None), default=None),
    }


def threshold_for_bpcer(bona_fide_scores: Sequence[float | None], target: float) -> float | None:
    """The highest threshold refusing at most ``target`` of these live presentations (None: none does)."""
    scores = sorted(-math.inf if s is None else s for s in bona_fide_scores)
    if not scores:
        return None
    allowed = math.floor(target * len(scores) + 1e-9)  # refusals the target allows
    t = scores[allowed] if allowed < len(scores) else math.inf
    return None if math.isinf(t) and t < 0 else float(min(t, 1.0))


def operating_points(presentations: Sequence[Presentation]) -> dict[str, Any]:
    """For BPCER 1%, 5%, 10%: the threshold, the BPCER there, and APCER per type there."""
    bona = [p.score for p in presentations if not p.is_attack]
    out: dict[str, Any] = {}
    for target in BPCER_TARGETS:
        t = threshold_for_bpcer(bona, target)
        out[f"{target:.0%}"] = None if t is None else rates_at(presentations, t)
    return out


def det_curve(presentations: Sequence[Presentation]) -> dict[str, list[float]]:
    """APCER (worst type) against BPCER at every distinct score."""
    cuts = sorted({p.score for p in presentations if p.score is not None} | {0.0, 1.0 + 1e-9})
    points = [rates_at(presentations, t) for t in cuts]
    return {
        "thresholds": cuts,
        "apcer_max": [p["apcer_max"] or 0.0 for p in points],
        "bpcer": [p["bpcer"] or 0.0 for p in points],
    }


def summary(presentations: Sequence[Presentation], threshold: float) -> dict[str, Any]:
    """The ``--json`` figures: {"liveness": {threshold, bpcer, apcer, apcer_max, attacks, bona_fide, no_face}}."""
    at = rates_at(presentations, threshold)
    attacks = [p for p in presentations if p.is_attack]
    bona = [p for p in presentations if not p.is_attack]
    return {
        "liveness": {
            **at,
            "attacks": len(attacks),
            "bona_fide": len(bona),
            "no_face": {"attacks": sum(p.score is None for p in attacks), "bona_fide": sum(p.score is None for p in bona)},
        }
    }


def per_source(presentations: Sequence[Presentation], threshold: float) -> dict[str, dict[str, Any]]:
    by_source: dict[str, list[Presentation]] = defaultdict(list)
    for p in presentations:
        by_source[p.source].append(p)
    return {source: summary(ps, threshold)["liveness"] for source, ps in sorted(by_source.items())}


# --- the report ---------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def text_lines(figures: dict[str, Any]) -> list[str]:
    """The summary as the command prints it."""
    f = figures["liveness"]
    lines = [
        f"threshold {f['threshold']:.3f}: BPCER {_pct(f['bpcer'])} of {f['bona_fide']} live; "
        f"APCER max {_pct(f['apcer_max'])} over {f['attacks']} attacks",
        *(f"  APCER {kind}: {_pct(rate)}" for kind, rate in f["apcer"].items()),
        f"  no face found (refused): {f['no_face']['attacks']} attacks, {f['no_face']['bona_fide']} live",
    ]
    return lines


def write_report(presentations: Sequence[Presentation], threshold: float, folder: Path) -> list[Path]:
    """report.md (figures, operating points, per source, every image), figures.json and det.png."""
    folder.mkdir(parents=True, exist_ok=True)
    figures = summary(presentations, threshold)
    points = operating_points(presentations)
    sources = per_source(presentations, threshold)
    curve = det_curve(presentations)
    data = {**figures, "operating_points": points, "per_source": sources, "det": curve,
            "presentations": [{"file": str(p.path), "attack_type": p.attack_type, "source": p.source,
                               "score": p.score, "on_grey_canvas": p.placed} for p in presentations]}
    (folder / "figures.json").write_text(json.dumps(data, indent=2))
    md = ["# Liveness evaluation (ISO/IEC 30107-3)", "", *text_lines(figures), "",
          "## Operating points", "", "| BPCER target | threshold | BPCER | APCER max | APCER per type |", "| --- | --- | --- | --- | --- |"]
    for target, at in points.items():
        if at is None:
            md.append(f"| {target} | unreachable | | | |")
            continue
        kinds = ", ".join(f"{k} {_pct(v)}" for k, v in at["apcer"].items())
        md.append(f"| {target} | {at['threshold']:.3f} | {_pct(at['bpcer'])} | {_pct(at['apcer_max'])} | {kinds} |")
    md += ["", f"## Per source at threshold {threshold:.3f}", "", "| source | live | BPCER | attacks | APCER per type | no face (attacks/live) |", "| --- | --- | --- | --- | --- | --- |"]
    for source, f in sources.items():
        kinds = ", ".join(f"{k} {_pct(v)}" for k, v in f["apcer"].items()) or "-"
        md.append(f"| {source} | {f['bona_fide']} | {_pct(f['bpcer'])} | {f['attacks']} | {kinds} | {f['no_face']['attacks']}/{f['no_face']['bona_fide']} |")
    md += ["", "## Every image", "", "| file | type | source | p(live) | on grey canvas |", "| --- | --- | --- | --- | --- |"]
    for p in presentations:
        score = "no face" if p.score is None else f"{p.score:.3f}"
        md.append(f"| {p.path.name} | {p.attack_type or 'bona fide'} | {p.source} | {score} | {'yes' if p.placed else ''} |")
    (folder / "report.md").write_text("\n".join(md) + "\n")
    _det_plot(curve, figures["liveness"], folder / "det.png")
    return [folder / "report.md", folder / "figures.json", folder / "det.png"]


def _det_plot(curve: dict[str, list[float]], at: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps = 1e-3
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot(np.clip(curve["apcer_max"], eps, 1), np.clip(curve["bpcer"], eps, 1), drawstyle="steps-post", label="silent check")
    if at["apcer_max"] is not None and at["bpcer"] is not None:
        ax.plot([max(at["apcer_max"], eps)], [max(at["bpcer"], eps)], "o", label=f"threshold {at['threshold']:.2f}")
    ax.set(xscale="log", yscale="log", xlabel="APCER (worst attack type)", ylabel="BPCER",
           title=f"DET (0 drawn at {eps:g})", xlim=(eps, 1.05), ylim=(eps, 1.05))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def door_detector(ctx: KioskContext) -> CanvasDetector:
    """The detector as the door runs it (no padded pass), with the grey canvas for tight crops."""
    settings = ctx.settings
    return CanvasDetector(FaceDetector.from_settings(settings.models, settings.detection.model_copy(update={"pad_fraction": 0.0})))


# --- `kiosk calibrate`: the site's liveness threshold ----------------------------------------


@dataclass(frozen=True)
class LivenessFit:
    calibration_id: int
    threshold: float
    target_bpcer: float
    metrics: dict[str, Any]


def fit_liveness_threshold(
    ctx: KioskContext, live: Sequence[Path] = (), attacks: Path | None = None, progress: Progress | None = None, actor: str = "cli",
) -> LivenessFit:
    """Choose and store the threshold refusing ``liveness.target_bpcer`` of this site's live faces.

    The live evidence is the site's enrolment (its camera, its light) plus the live captures
    in the ``live`` folders. An enrolment counts through its photo, where the file is still
    on disk unchanged (same sha256): the stored crop is an aligned face without the room
    around it, which the models, fed 2.7x and 4.0x the face box, take for a photo's border
    (measured: with 16 pad-dev people's crops among the live evidence, the threshold fell to 0.007).
    Attacks, when given, are only measured at the chosen threshold (ISO/IEC 30107-3 fixes the
    BPCER and reports the APCER there), never used to move it.
    """
    from db.models import AdminAction, FaceSample, LivenessCalibration
    from kiosk.liveness.setup import detector_key, load_detector
    from kiosk.storage.checksums import file_sha256

    say = progress or (lambda _m: None)
    settings = ctx.settings
    target = settings.liveness.target_bpcer
    liveness = load_detector(settings)
    detector = door_detector(ctx)
    with ctx.sessions() as session:
        enrolled = list(session.execute(select(FaceSample.source, FaceSample.sha256)))
    photos = [Path(src) for src, digest in enrolled if Path(src).is_file() and file_sha256(Path(src)) == digest]
    if len(photos) < len(enrolled):
        say(f"liveness: {len(enrolled) - len(photos)} of {len(enrolled)} enrolment photos are no longer on disk (crops alone are no evidence)")
    presentations = score_presentations([(p, None, "enrolment") for p in photos], detector, liveness, settings.detection.max_side, say)
    extra: list[tuple[Path, str | None, str]] = []
    for folder in live:
        if not folder.is_dir():
            raise KioskError(f"live folder does not exist: {folder}")
        extra += [(p, None, f"live {folder.name}") for p in iter_image_files(folder)]
    if attacks is not None:
        if not attacks.is_dir():
            raise KioskError(f"attacks folder does not exist: {attacks}")
        for p in iter_image_files(attacks):
            parts = _parts(attacks, p)
            extra.append((p, parts[0] if parts else "attack", "attacks"))
    presentations += score_presentations(extra, detector, liveness, settings.detection.max_side, say)
    bona = [p.score for p in presentations if not p.is_attack]
    if not bona:
        raise KioskError("no live evidence: no enrolment photos on disk and no --live folder")
    threshold = threshold_for_bpcer(bona, target)
    if threshold is None:
        raise KioskError(f"no threshold refuses at most {target:.0%} of the live evidence: too many faces not found")
    at = summary(presentations, threshold)["liveness"]
    metrics = {
        "evidence": {"enrolment_photos": len(photos), "live": [str(f) for f in live], "attacks": str(attacks) if attacks else None},
        **at,
        "sources": per_source(presentations, threshold),
    }
    key = detector_key(settings)
    with ctx.sessions.begin() as session:
        row = LivenessCalibration(detector=key, target_bpcer=target, threshold=threshold, metrics=metrics)
        session.add(row)
        session.flush()
        session.add(AdminAction(actor=actor, action="calibrate-liveness", subject=key, details={"liveness_calibration": row.id, "threshold": threshold, "target_bpcer": target}))
        row_id = row.id
    return LivenessFit(row_id, threshold, target, metrics)
