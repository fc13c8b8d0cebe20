"""Enrolment rate on this machine: images per second, with decode, detection and alignment timed apart.

Runs the real front end (SCRFD from ../shared/models, or --detector) over a folder of photos
(default ../shared/data/faces-dev), once per detector given, and prints one table.

    .venv/bin/python bench/enrollment_rate.py [--images DIR] [--detector PATH ...] [--threads N]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from kiosk.admin.enrolment import Enroller
from kiosk.config import DetectionConfig, ModelPaths, Settings
from kiosk.context import KioskContext
from kiosk.vision.face_alignment import CLIP_SIZE, align
from kiosk.vision.face_detection import FaceDetector, primary_face
from kiosk.vision.images import decode_image, iter_image_files

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def stage_times(files: list[Path], detector: FaceDetector) -> dict[str, np.ndarray]:
    times: dict[str, list[float]] = {"read+hash": [], "decode": [], "detect": [], "align": []}
    for path in files:
        t0 = time.perf_counter()
        data = path.read_bytes()
        hashlib.sha256(data).hexdigest()
        t1 = time.perf_counter()
        image = decode_image(data)
        t2 = time.perf_counter()
        face = primary_face(detector.detect(image).faces, image.shape)
        t3 = time.perf_counter()
        if face is not None:
            align(image, face.keypoints, CLIP_SIZE)
        t4 = time.perf_counter()
        for key, value in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            times[key].append(value)
    return {k: np.array(v) * 1000 for k, v in times.items()}


def end_to_end(files: list[Path], detector_path: Path, threads: int) -> float:
    """Images per second through the real Enroller (SQLite commit and crop write included)."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp), models=ModelPaths(detector=detector_path))
        ctx = KioskContext(settings)
        ctx.__dict__["detector"] = FaceDetector(detector_path, settings.detection, ["CPUExecutionProvider"], threads)
        enroller = Enroller(ctx.sessions, ctx.detector, ctx.crops)
        start = time.perf_counter()
        enroller.enroll("bench", files)
        return len(files) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=SHARED / "data" / "faces-dev")
    parser.add_argument("--detector", type=Path, action="append")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    detectors = args.detector or [SHARED / "models" / "scrfd_500m_bnkps.onnx", SHARED / "models" / "scrfd_2.5g_bnkps.onnx"]
    files = iter_image_files(args.images)
    print(f"{len(files)} images from {args.images}; onnxruntime threads={args.threads}; cpu count={os.cpu_count()}")
    print(f"{'detector':28} {'read+hash':>10} {'decode':>8} {'detect':>8} {'align':>8} {'front end':>10} {'enrol img/s':>12}")
    for path in detectors:
        detector = FaceDetector(path, DetectionConfig(), ["CPUExecutionProvider"], args.threads)
        stage_times(files[:10], detector)  # warm-up
        t = stage_times(files, detector)
        total = sum(v.mean() for v in t.values())
        rate = end_to_end(files, path, args.threads)
        print(
            f"{path.name:28} {t['read+hash'].mean():9.2f}ms {t['decode'].mean():7.2f}ms {t['detect'].mean():7.2f}ms "
            f"{t['align'].mean():7.2f}ms {1000 / total:8.1f}/s {rate:11.1f}/s"
        )
    print("front end = read, hash, decode, detect and align per image (mean); enrol = the real Enroller with SQLite and crop writes")


if __name__ == "__main__":
    main()
