"""MQTT at the door: time from a grant to its event at a subscriber, and the door loop's fps with
MQTT off and on, in the same run (alternating rounds, so the machine's load hits both alike).

A private mosquitto on 127.0.0.1 (tests/mqtt_broker.py: password file, ACL), the real door loop
(SCRFD, MobileFaceNet, face recogniser) on a replayed folder of DEV people's held-back photos and
strangers, gpiozero's mock pins, a real SQLite file, and a paho subscriber in this process (one
clock for both ends). The grant's time is taken when the door service tells its listeners, right
after the event is committed and the relay pulsed.

    python bench/mqtt_latency.py [--people 10] [--strangers 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from door_common import DETECTOR, DEV, EMBEDDER, REPO, STRANGERS, photos

sys.path.insert(0, str(REPO / "tests"))  # mqtt_broker: the one place that starts a private mosquitto


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10)
    parser.add_argument("--strangers", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each variant (off, on, off, on, ...)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory
    from mqtt_broker import USERS, Broker

    from kiosk.admin.enrolment import Enroller
    from kiosk.config import CameraConfig, DoorHardwareConfig, ModelPaths, MqttConfig, PolicyConfig, Settings
    from kiosk.context import KioskContext
    from kiosk.door.relay import build_relay
    from kiosk.door.service import build_door_service
    from kiosk.integrations.mqtt_client import MqttBridge
    from kiosk.training.retrain import retrain
    from kiosk.vision.camera import ReplaySource, ResilientCamera

    Device.pin_factory = MockFactory()
    work = Path(tempfile.mkdtemp(prefix="mqtt-bench-"))
    secret = work / "password"
    secret.write_text(USERS["kiosk"] + "\n")
    secret.chmod(0o600)
    broker = Broker.create()
    broker.start()
    try:
        base = Settings(
            home=work / "home", models=ModelPaths(detector=DETECTOR, embedder=EMBEDDER),
            door_hardware=DoorHardwareConfig(pin_factory="mock", pulse_seconds=0.05),
            camera=CameraConfig(hold_frames=5, gap_frames=6), policy=PolicyConfig(cooldown_seconds=0.0),
        )
        ctx = KioskContext(base)
        chosen = sorted(p for p in DEV.iterdir() if p.is_dir())[: args.people]
        enroller = Enroller(ctx.sessions, ctx.detector, ctx.crops)
        for person in chosen:
            enroller.enroll(person.name, photos(person)[:12])
        retrain(ctx)
        folder = work / "replay"
        folder.mkdir()
        shown = [(p.name, f) for p in chosen for f in photos(p)[12:14]]
        shown += [("stranger", photos(s)[0]) for s in sorted(STRANGERS.iterdir())[: args.strangers]]
        for i, (label, photo) in enumerate(shown):
            (folder / f"{i:04d}-{label}-{photo.stem}.jpg").symlink_to(photo)

        mqtt_on = base.model_copy(update={"mqtt": MqttConfig(enabled=True, host=broker.host, port=broker.port, username="kiosk",
                                                               password_file=secret, status_seconds=1.0)})
        sub = broker.client("controller")
        sub.subscribe("kiosk/front/events")
        arrived: dict[int, float] = {}
        done = threading.Condition()

        def on_message(client, userdata, message) -> None:  # type: ignore[no-untyped-def]
            with done:
                arrived[json.loads(message.payload)["event_id"]] = time.perf_counter()
                done.notify_all()

        sub.client.on_message = on_message
        fps: dict[str, list[float]] = {"off": [], "on": []}
        latencies: list[float] = []
        all_latencies: list[float] = []
        for _ in range(args.rounds):
            for variant in ("off", "on"):
                settings = mqtt_on if variant == "on" else base
                run_ctx = KioskContext(settings)
                run_ctx.__dict__["detector"] = ctx.detector
                run_ctx.__dict__["embedder"] = ctx.embedder
                relay = build_relay(settings.door_hardware)
                service = build_door_service(run_ctx, ResilientCamera(ReplaySource.from_path(folder, settings.camera), settings.camera),
                                             relay, detector=ctx.detector)
                granted_at: dict[int, tuple[float, bool]] = {}
                service.add_listener(lambda d: granted_at.__setitem__(service.stats.event_ids[-1], (time.perf_counter(), d.granted)))
                bridge = None
                if variant == "on":
                    bridge = MqttBridge(settings, run_ctx.sessions)
                    bridge.attach(service)
                    bridge.start()
                started = time.perf_counter()
                service.run(threading.Event())
                fps[variant].append(service.stats.frames / (time.perf_counter() - started))
                if bridge is not None:
                    with done:
                        done.wait_for(lambda: set(granted_at) <= set(arrived), timeout=60)
                    bridge.stop()
                    for event_id, (at, granted) in granted_at.items():
                        if event_id in arrived:
                            all_latencies.append(arrived[event_id] - at)
                            if granted:
                                latencies.append(arrived[event_id] - at)
                relay.shutdown()
                run_ctx.engine.dispose()
        sub.close()
    finally:
        broker.remove()

    print(f"door loop on {len(shown)} stills, each 5 frames then 6 empty ({args.people} people x 2 photos, {args.strangers} strangers), "
          f"{args.rounds} rounds each, torch threads 1")
    for variant in ("off", "on"):
        print(f"  MQTT {variant:3}: fps per round {', '.join(f'{v:.1f}' for v in fps[variant])}; median {statistics.median(fps[variant]):.1f}")
    if latencies:
        print(f"  grant -> event at subscriber: {len(latencies)} grants, median {statistics.median(latencies) * 1000:.1f} ms, "
              f"max {max(latencies) * 1000:.1f} ms")
        print(f"  any event -> subscriber:      {len(all_latencies)} events, median {statistics.median(all_latencies) * 1000:.1f} ms, "
              f"max {max(all_latencies) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
