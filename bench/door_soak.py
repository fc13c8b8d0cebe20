"""Soak: at least 20,000 replayed frames through the real door service; memory must stay flat and
no event may be lost.

Prints the process RSS at start (after warm-up), every 5,000 frames, and at the end; then checks
that every decision the listeners heard is a committed row in access_events, and that the rows
written during the run are exactly the service's own count. The cooldown is 0, so every visit
(each still shown) is an event. SCRFD runs at 320x320 here (``--input-size``) so the soak fits
in minutes on this shared 2-core CPU; the detector's resolution does not change what is soaked
(the loop, the tracker, the policy, the event store). ``--recogniser hybrid`` soaks the real
HybridRecogniser with its per-track CLIP answers, CLIP being open_clip's RN50 image tower with
random weights on onnxruntime (timed and run, its output discarded: bench/door_common.py's
timing_only_clip), and checks that no CLIP answer outlives its track.

    .venv/bin/python bench/door_soak.py [--frames 20000] [--people 10] [--strangers 10] [--recogniser face|hybrid]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

from door_common import enrolled_home, mock_relay, replay_folder, rn50_tower, timing_only_clip


def rss_mib() -> float:
    """Resident set size now (not the peak), from /proc."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--people", type=int, default=10)
    parser.add_argument("--strangers", type=int, default=10)
    parser.add_argument("--input-size", type=int, default=320)
    parser.add_argument("--recogniser", choices=["face", "hybrid"], default="face")
    args = parser.parse_args()

    from sqlalchemy import func, select

    from db.models import AccessEvent
    from kiosk.config import CameraConfig, DetectionConfig, PolicyConfig
    from kiosk.door.service import build_door_service
    from kiosk.recognition.hybrid_recogniser import HybridRecogniser
    from kiosk.recognition.selection import Selection, load_recogniser
    from kiosk.vision.camera import ReplaySource, ResilientCamera

    with tempfile.TemporaryDirectory(prefix="door-soak-") as tmp:
        root = Path(tmp)
        camera = CameraConfig(hold_frames=5, gap_frames=6)
        ctx, people = enrolled_home(
            root / "home", args.people, camera=camera, policy=PolicyConfig(cooldown_seconds=0.0),
            detection=DetectionConfig(input_size=args.input_size),
        )
        replay = replay_folder(root / "replay", people, args.strangers)
        stills = len(list(replay.iterdir()))
        per_pass = stills * (camera.hold_frames + camera.gap_frames)
        repeat = -(-args.frames // per_pass)
        source = ReplaySource.from_path(replay, camera, repeat=repeat)
        relay = mock_relay()
        selection = load_recogniser(ctx)
        if args.recogniser == "hybrid":
            face, recognition = selection.recogniser, ctx.settings.recognition
            clip = timing_only_clip(rn50_tower(root / "clip-image", 0), face)
            hybrid = HybridRecogniser(clip, face, recognition.hybrid_gate, recognition.hybrid_clip_refresh_frames)  # type: ignore[arg-type]
            selection = Selection(hybrid, "hybrid: face + RN50 tower (random weights, output discarded)")
        service = build_door_service(ctx, ResilientCamera(source, camera), relay, selection=selection)
        with ctx.sessions() as s:
            rows_before = s.scalar(select(func.count(AccessEvent.id)))
        heard: list[bool] = []
        service.add_listener(lambda d: heard.append(d.granted))
        samples: list[tuple[int, float]] = []
        done = threading.Event()

        def sample() -> None:
            next_at = 0
            while not done.wait(0.2):
                if service.stats.frames >= next_at:
                    samples.append((service.stats.frames, rss_mib()))
                    print(f"  frames {service.stats.frames:6d}  RSS {samples[-1][1]:.1f} MiB", file=sys.stderr, flush=True)
                    next_at += 5000 if next_at else 1000  # first sample after warm-up

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        service.run(threading.Event())
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
        samples.append((service.stats.frames, rss_mib()))
        relay.shutdown()
        with ctx.sessions() as s:
            rows = s.scalar(select(func.count(AccessEvent.id))) - rows_before
            ids = set(s.scalars(select(AccessEvent.id)))
        stats = service.stats

    lost = [i for i in stats.event_ids if i not in ids]
    remembered = getattr(selection.recogniser, "remembered_tracks", 0)
    start_rss = next((r for f, r in samples if f >= 1000), samples[0][1])
    print(f"door soak: {stats.frames} frames ({source.total_frames} replayed, {stats.dropped} dropped) in {wall:.0f} s "
          f"({stats.frames / wall:.1f} fps), SCRFD {args.input_size}x{args.input_size}, {selection.reason}, shared CPU")
    print(f"RSS after warm-up (frame {next(f for f, r in samples if r == start_rss)}): {start_rss:.1f} MiB; "
          f"at end (frame {samples[-1][0]}): {samples[-1][1]:.1f} MiB; growth {samples[-1][1] - start_rss:+.1f} MiB")
    print(f"events: {stats.events} recorded by the service, {len(heard)} heard by listeners, {rows} rows committed, "
          f"{stats.store_failures} store failures, {len(lost)} ids missing; {stats.grants} grants, {stats.refusals} refusals")
    if args.recogniser == "hybrid":
        print(f"CLIP faces encoded: {selection.recogniser.clip.encoded}; CLIP answers still held at the end: {remembered}")
    ok = stats.frames >= args.frames and rows == stats.events == len(heard) and not lost and stats.store_failures == 0 and remembered == 0
    print("no event lost" if ok else "EVENTS LOST OR RUN SHORT")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
