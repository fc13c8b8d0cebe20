"""Door loop timing on this CPU: per-frame time by stage, loop overhead, first frame -> relay pulse.

Two variants run over the same replay (enrolled people's held-back photos, then strangers):

- face:   SCRFD + MobileFaceNet face recogniser (real recognition);
- hybrid-arch: the same, plus the CLIP RN50 image tower on every 224x224 face through
  onnxruntime, exported here from open_clip's RN50 with RANDOM weights: the hybrid's extra
  inference (the frozen image tower, batch = faces in the frame). Random CLIP weights cannot
  recognise anyone (they would refuse every grant), so the decisions still come from the face
  recogniser: the timing is real, the CLIP output is discarded, no recognition is claimed.
- hybrid-gated: as hybrid-arch, with HybridRecogniser's gate (recognition.hybrid_gate): the
  tower runs only on faces the face verifier puts at or above the gate, as the real hybrid does.

"Overhead" is everything in the loop but model inference (SCRFD, MobileFaceNet, RN50):
camera read and JPEG decode, alignment, tracking and policy, event commits, status file,
frame handover. The replay runs as fast as the loop goes (no frame is dropped), so frame
time is the loop's own. The machine is shared: run it twice and quote ranges.

    .venv/bin/python bench/door_latency.py [--people 10] [--strangers 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from door_common import enrolled_home, mock_relay, replay_folder

import numpy as np


def clip_tower(path: Path, threads: int):
    """RN50 image tower (random weights) exported to ONNX once, run through onnxruntime."""
    import onnxruntime as ort

    if not path.exists():
        import open_clip
        import torch

        model = open_clip.create_model("RN50", pretrained=None).visual.eval()
        torch.onnx.export(
            model, torch.randn(1, 3, 224, 224), str(path), input_names=["image"], output_names=["features"],
            dynamic_axes={"image": {0: "n"}, "features": {0: "n"}}, opset_version=17, dynamo=False,
        )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def with_clip_tower(recogniser, session, gate: float = 0.0):
    """The face recogniser plus RN50 inference on each 224 crop the hybrid would send to CLIP.

    With a gate, as in HybridRecogniser, only faces the face verifier puts at or above it go
    through the tower (CLIP's preprocessing: RGB, CLIP mean/std).
    """
    from kiosk.recognition import Recogniser

    mean = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32) * 255
    std = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32) * 255

    class FacePlusClipTower(Recogniser):
        name = "hybrid"
        model_version = recogniser.model_version

        @property
        def people(self) -> list[str]:
            return recogniser.people

        def predict(self, faces, top_k=5):
            preds = recogniser.predict(faces, top_k)
            worth = [f for f, p in zip(faces, preds) if p.probability >= gate]
            if worth:
                batch = np.stack([(f.at(224)[:, :, ::-1].astype(np.float32) - mean) / std for f in worth]).transpose(0, 3, 1, 2)
                session.run(None, {"image": np.ascontiguousarray(batch)})
            return preds

    return FacePlusClipTower()


def run_variant(name: str, ctx, replay: Path, selection, detector) -> dict[str, object]:
    from kiosk.camera import ReplaySource, ResilientCamera
    from kiosk.door_service import build_door_service

    source = ReplaySource.from_path(replay, ctx.settings.camera)
    relay = mock_relay()
    service = build_door_service(ctx, ResilientCamera(source, ctx.settings.camera), relay, selection=selection, detector=detector)
    started = time.perf_counter()
    service.run(threading.Event())
    wall = time.perf_counter() - started
    relay.shutdown()
    stats, times = service.stats, service.times
    per = times.per_frame_ms()
    frame_ms = 1000 * wall / stats.frames
    inference = per["detect"] + per["recognise"]
    return {
        "name": name, "frames": stats.frames, "fps": stats.frames / wall, "frame_ms": frame_ms, "stages": per,
        "overhead_pct": 100 * (frame_ms - inference) / frame_ms, "grants": stats.grants, "refusals": stats.refusals,
        "latency": stats.pulse_latencies,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=10)
    parser.add_argument("--strangers", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime threads per model")
    args = parser.parse_args()

    from kiosk.config import CameraConfig
    from kiosk.face_detection import FaceDetector
    from kiosk.face_embedder import FaceEmbedder
    from kiosk.recogniser_selection import Selection, load_recogniser

    with tempfile.TemporaryDirectory(prefix="door-latency-") as tmp:
        root = Path(tmp)
        camera = CameraConfig(hold_frames=5, gap_frames=6)
        ctx, people = enrolled_home(root / "home", args.people, camera=camera)
        replay = replay_folder(root / "replay", people, args.strangers)
        door_detection = ctx.settings.detection.model_copy(update={"pad_fraction": 0.0})
        detector = FaceDetector.from_settings(ctx.settings.models, door_detection, threads=args.threads)
        ctx.__dict__["embedder"] = FaceEmbedder.from_settings(ctx.settings.models, threads=args.threads)
        face = load_recogniser(ctx)
        tower = clip_tower(root / "rn50_visual_random.onnx", args.threads)
        hybrid = Selection(with_clip_tower(face.recogniser, tower), "face recogniser + RN50 image tower (random weights, timing only)")
        gate = ctx.settings.recognition.hybrid_gate
        gated = Selection(with_clip_tower(face.recogniser, tower, gate), f"as hybrid-arch, tower only at face p >= {gate}")
        results = [
            run_variant("face", ctx, replay, face, detector),
            run_variant("hybrid-arch", ctx, replay, hybrid, detector),
            run_variant("hybrid-gated", ctx, replay, gated, detector),
        ]

    print(f"door loop, replay of {args.people} enrolled people (1 held-back photo each) + {args.strangers} strangers,")
    print(f"each still held 5 frames, 6 empty frames between; policy K=3 of N=5; onnxruntime {args.threads} threads; CPU, shared machine")
    header = f"{'variant':12} {'frames':>6} {'fps':>6} {'frame ms':>8} " + " ".join(f"{s:>9}" for s in results[0]["stages"]) + f" {'overhead':>8}"
    print(header)
    for r in results:
        stages = " ".join(f"{v:9.2f}" for v in r["stages"].values())
        print(f"{r['name']:12} {r['frames']:6d} {r['fps']:6.1f} {r['frame_ms']:8.2f} {stages} {r['overhead_pct']:7.1f}%")
    print("stage columns: ms per frame averaged over all frames (empty-doorway frames included); overhead = frame time minus detect and recognise")
    for r in results:
        lat = r["latency"]
        if lat:
            print(
                f"{r['name']:12} first frame -> relay pulse: median {1000 * statistics.median(lat):.0f} ms, "
                f"max {1000 * max(lat):.0f} ms over {len(lat)} grants ({r['refusals']} refusals)"
            )
        else:
            print(f"{r['name']:12} no grants")
    print("targets: hybrid >= 20 fps; overhead < 20% of frame time; pulse within 300 ms of the first frame")


if __name__ == "__main__":
    sys.exit(main())
