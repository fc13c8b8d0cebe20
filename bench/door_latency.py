"""Door loop timing on this CPU: per-frame time by stage, loop overhead, first frame -> relay pulse.

Six variants run over the same replay (enrolled people's held-back photos, then strangers):

- face:         SCRFD + MobileFaceNet face recogniser (real recognition);
- hybrid-every: the real HybridRecogniser with CLIP's RN50 image tower on every face of every
  frame (gate 0, refresh 1), through onnxruntime, exported by kiosk.recognition.clip_onnx from open_clip's
  RN50 with RANDOM weights. Random CLIP weights cannot recognise anyone, so the bench's CLIP
  part (TimingOnlyClip) runs the real tower, discards its features and answers with the face
  recogniser's prediction: the timing is real, the decisions are the face recogniser's, no
  recognition is claimed for CLIP;
- hybrid-gated: as hybrid-every with the gate (recognition.hybrid_gate): the tower runs only on
  faces the face verifier puts at or above it;
- hybrid:       the configured hybrid (gate plus recognition.hybrid_clip_refresh_frames): CLIP's
  answer for a face track is reused while the verifier keeps naming the same person;
- every-int8, hybrid-int8: hybrid-every and hybrid with the tower quantised to int8
  (recognition.clip_runtime = "onnx-int8", calibrated on the bench's stored crops);
- face+liveness, hybrid+liveness: face and hybrid with the silent liveness check (issue 14:
  MiniFASNetV2 + V1SE on faces recognition would grant, until the track is judged live; the
  threshold 0.5 here, so some press photos are refused as not live). "live faces" counts the
  faces it scored. ``--liveness-only`` runs face and face+liveness alone (no CLIP export).

"Overhead" is everything in the loop but model inference (SCRFD, MobileFaceNet, RN50):
camera read and JPEG decode, alignment, tracking and policy, event commits, status file,
frame handover. The replay runs as fast as the loop goes (no frame is dropped), so frame
time is the loop's own. "CLIP faces" counts the faces the tower encoded. The machine is
shared: run it twice and quote ranges.

    .venv/bin/python bench/door_latency.py [--people 10] [--strangers 10] [--threads 2] [--liveness-only] [--rounds 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from door_common import enrolled_home, mock_relay, replay_folder, rn50_tower, silent_liveness, time_face_frames, timing_only_clip


def alone_ms(run, repeats: int = 30) -> float:
    """Median milliseconds of one call, after two warm-up calls."""
    for _ in range(2):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def run_variant(name: str, ctx, replay: Path, selection, detector, liveness=None) -> dict[str, object]:
    from kiosk.door.service import build_door_service
    from kiosk.vision.camera import ReplaySource, ResilientCamera

    source = ReplaySource.from_path(replay, ctx.settings.camera)
    relay = mock_relay()
    service = build_door_service(ctx, ResilientCamera(source, ctx.settings.camera), relay, selection=selection, detector=detector, liveness=liveness)
    busy = time_face_frames(service)  # the loop's time on each frame with a face in view
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
        "latency": stats.pulse_latencies, "busy_fps": len(busy) / max(sum(busy), 1e-9), "busy_max_ms": 1000 * max(busy, default=0), "clip_faces": getattr(getattr(selection.recogniser, "clip", None), "encoded", 0),
        "live_faces": service.loop.liveness.scored_faces if service.loop.liveness is not None else 0,
        "liveness_share": times.totals["liveness"] / max(sum(busy), 1e-9),  # of the face frames' loop time
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=10)
    parser.add_argument("--strangers", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime threads per model")
    parser.add_argument("--liveness-only", action="store_true", help="only face and face+liveness (skips the CLIP export)")
    parser.add_argument("--rounds", type=int, default=1, help="run the variants this many times, interleaved, and keep each one's fastest")
    args = parser.parse_args()

    from kiosk.config import CameraConfig
    from kiosk.recognition.base import FaceCrops
    from kiosk.recognition.clip_onnx import int8_image_tower
    from kiosk.recognition.face_embedder import FaceEmbedder
    from kiosk.recognition.hybrid_recogniser import HybridRecogniser
    from kiosk.recognition.selection import Selection, load_recogniser
    from kiosk.storage.samples import spread_crops
    from kiosk.vision.face_alignment import ARCFACE_SIZE, CLIP_SIZE
    from kiosk.vision.face_detection import FaceDetector, primary_face
    from kiosk.vision.images import read_image

    with tempfile.TemporaryDirectory(prefix="door-latency-") as tmp:
        root = Path(tmp)
        camera = CameraConfig(hold_frames=5, gap_frames=6)
        ctx, people = enrolled_home(root / "home", args.people, camera=camera)
        replay = replay_folder(root / "replay", people, args.strangers)
        door_detection = ctx.settings.detection.model_copy(update={"pad_fraction": 0.0})
        detector = FaceDetector.from_settings(ctx.settings.models, door_detection, threads=args.threads)
        ctx.__dict__["embedder"] = FaceEmbedder.from_settings(ctx.settings.models, threads=args.threads)
        face = load_recogniser(ctx)
        liveness = silent_liveness(args.threads)
        image = read_image(sorted(replay.iterdir())[0])
        first = primary_face(detector.detect(image).faces, image.shape)
        crops = FaceCrops(image, first.keypoints)
        alone = {
            "SCRFD detect (one frame)": alone_ms(lambda: detector.detect(image)),
            "MobileFaceNet (one face)": alone_ms(lambda: ctx.embedder.embed([crops.at(ARCFACE_SIZE)])),
            "liveness V2+V1SE (one face)": alone_ms(lambda: liveness.detector.score(image, [first.box])),
        }
        variants = [("face", face, None), ("face+liveness", face, liveness)]
        int8 = None
        if not args.liveness_only:
            tower = rn50_tower(root / "clip-image", args.threads)
            recognition = ctx.settings.recognition
            gate, refresh = recognition.hybrid_gate, recognition.hybrid_clip_refresh_frames

            int8 = int8_image_tower(tower, lambda: spread_crops(ctx.sessions, ctx.crops), recognition.clip_int8_min_cosine, ["CPUExecutionProvider"], args.threads)
            if int8 is tower:
                sys.exit("the int8 RN50 tower strayed past recognition.clip_int8_min_cosine; nothing to compare")

            def hybrid(gate: float, refresh: int, what: str, tower=tower) -> Selection:
                clip = timing_only_clip(tower, face.recogniser)
                return Selection(HybridRecogniser(clip, face.recogniser, gate, refresh), f"{what} (RN50 random weights, timing only)")

            variants += [
                ("hybrid-every", hybrid(0.0, 1, "CLIP on every face of every frame"), None),
                ("hybrid-gated", hybrid(gate, 1, f"CLIP where face p >= {gate}"), None),
                ("hybrid", hybrid(gate, refresh, f"gate {gate}, CLIP answer reused up to {refresh} frames per track"), None),
                ("hybrid+liveness", hybrid(gate, refresh, "as hybrid, with liveness"), liveness),
                ("every-int8", hybrid(0.0, 1, "as hybrid-every, int8 tower", int8), None),
                ("hybrid-int8", hybrid(gate, refresh, "as hybrid, int8 tower", int8), None),
            ]
            alone["RN50 image tower (one face)"] = alone_ms(lambda: tower.encode_images([crops.at(CLIP_SIZE)]))
            alone["RN50 int8 (one face)"] = alone_ms(lambda: int8.encode_images([crops.at(CLIP_SIZE)]))
        best: dict[str, dict[str, object]] = {}
        for _ in range(args.rounds):  # interleaved rounds, best of each: load from others on a shared machine cancels out
            for name, selection, live in variants:
                r = run_variant(name, ctx, replay, selection, detector, live)
                if name not in best or r["busy_fps"] > best[name]["busy_fps"]:
                    best[name] = r
        results = list(best.values())

    print(f"door loop, replay of {args.people} enrolled people (1 held-back photo each) + {args.strangers} strangers,")
    print(f"each still held 5 frames, 6 empty frames between; policy K=3 of N=5; onnxruntime {args.threads} threads; CPU, shared machine")
    header = f"{'variant':15} {'frames':>6} {'fps':>6} {'frame ms':>8} " + " ".join(f"{s:>9}" for s in results[0]["stages"])
    print(header + f" {'overhead':>8} {'CLIP faces':>10} {'live faces':>10} {'fps (face)':>10} {'max ms':>7}")
    for r in results:
        stages = " ".join(f"{v:9.2f}" for v in r["stages"].values())
        print(
            f"{r['name']:15} {r['frames']:6d} {r['fps']:6.1f} {r['frame_ms']:8.2f} {stages} {r['overhead_pct']:7.1f}% "
            f"{r['clip_faces']:10d} {r['live_faces']:10d} {r['busy_fps']:10.1f} {r['busy_max_ms']:7.1f}"
        )
    print("stage columns: ms per frame averaged over all frames (empty-doorway frames included); overhead = frame time minus detect and recognise")
    print("fps (face) and max ms: the loop alone (detect to decide) over the frames with a face in view only")
    by_name = {r["name"]: r for r in results}
    for base in ("face", "hybrid"):
        if base in by_name:
            with_liveness = by_name[f"{base}+liveness"]
            kept = with_liveness["busy_fps"] / by_name[base]["busy_fps"]
            print(f"{base}+liveness keeps {kept:.0%} of {base}'s frame rate with a face in view, run against run (target >= 85%); "
                  f"within its own run the liveness stage is {with_liveness['liveness_share']:.1%} of the face frames' time "
                  f"(keeps {1 - with_liveness['liveness_share']:.0%}, unaffected by load changing between runs)")
    for r in results:
        lat = r["latency"]
        if lat:
            print(
                f"{r['name']:15} first frame -> relay pulse: median {1000 * statistics.median(lat):.0f} ms, "
                f"max {1000 * max(lat):.0f} ms over {len(lat)} grants ({r['refusals']} refusals)"
            )
        else:
            print(f"{r['name']:15} no grants")
    if int8 is not None:
        print(f"int8 tower: smallest cosine to fp32 features over {int8.meta['int8_checked_on']} stored crops {float(int8.meta['int8_min_cosine']):.5f} (random weights)")
    print("each model alone, median of 30 calls: " + ", ".join(f"{k} {v:.1f} ms" for k, v in alone.items()))
    print("targets: hybrid >= 20 fps; overhead < 20% of frame time; pulse within 300 ms of the first frame; liveness keeps >= 85% of fps")


if __name__ == "__main__":
    sys.exit(main())
