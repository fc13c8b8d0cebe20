"""Access-panel timing: granted frame -> card read at a real libosdp panel, and the Wiegand frame's length.

OSDP: the first `--people` DEV people are enrolled and trained, each given a card, and their
held-back photos replayed `--rounds` times (the grant cooldown off, so every visit is a grant)
through the real door service with the OSDP reader as its only output. A libosdp control
panel polls it over a pseudo-terminal with the secure channel, as a panel on RS-485 would
(at the pty's speed, not 9600 baud: on a real bus add the bytes' time on the wire). Two
figures per grant:
- frame -> read: from the moment the granting frame was read from the camera to the moment
  the panel's libosdp handed the card read to its application (recognition of that frame,
  the event commit, the send, the panel's next poll);
- send -> read: from the reader queueing the card read to the panel having it (the poll wait).

Wiegand: frames sent on gpiozero's mock pins with the configured timing; the duration is
from the first bit's falling edge to the last bit's rising edge (nominal: (bits - 1) x
interval + pulse).

    .venv/bin/python bench/panel_latency.py [--people 10] [--rounds 3] [--frames 30]
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from door_common import enrolled_home, photos  # noqa: E402


class TimedOutput:
    """The OSDP output, noting for each card it sent when the granting frame was read and when it was queued."""

    def __init__(self, inner, frame_read: list[float]):
        self.inner, self.frame_read = inner, frame_read
        self.frames: list[float] = []
        self.sent: list[float] = []

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def grant(self, person, card):
        frame = self.frame_read[-1]  # the loop is sequential: the last frame read is the one granting
        result = self.inner.grant(person, card)
        if result.sent:
            self.sent.append(time.monotonic())
            self.frames.append(frame)
        return result


def osdp_latency(people: int, rounds: int) -> None:
    from osdp import Event, KeyStore
    from osdp_panel import TestPanel, pty_pair

    from kiosk.config import CameraConfig, DoorHardwareConfig, OsdpConfig, PolicyConfig
    from kiosk.door.osdp_reader import OsdpReader, SerialChannel
    from kiosk.door.relay import build_relay
    from kiosk.door.service import build_door_service
    from kiosk.storage.credentials import Card, set_card
    from kiosk.vision.camera import ReplaySource, ResilientCamera

    work = Path(tempfile.mkdtemp(prefix="panel-bench-"))
    hardware = DoorHardwareConfig(pin_factory="mock", outputs=["osdp"])
    ctx, chosen = enrolled_home(work / "home", people, door_hardware=hardware,
                                policy=PolicyConfig(window_frames=3, min_frames=2, track_max_missed=1, cooldown_seconds=0.0))
    for i, person in enumerate(chosen):
        set_card(ctx.sessions, person.name, Card(7, 1000 + i))
    folder = work / "replay"
    folder.mkdir()
    shown = [(p.name, f) for _ in range(rounds) for p in chosen for f in photos(p)[12:13]]
    for i, (label, photo) in enumerate(shown):
        (folder / f"{i:04d}-{label}.jpg").symlink_to(photo)

    read_at: list[float] = []

    class CameraTimes(ReplaySource):
        def read(self):
            frame = super().read()
            if frame is not None:
                read_at.append(time.monotonic())
            return frame

    arrived: queue.Queue[float] = queue.Queue()
    key = KeyStore.gen_key()
    master, slave, path = pty_pair()
    reader = OsdpReader(SerialChannel(path, 115200), OsdpConfig(port=path, baud=115200, address=1), key)

    timed = TimedOutput(reader, read_at)
    relay = build_relay(hardware)
    source = CameraTimes(sorted(folder.iterdir()), folder, hold=3, gap=2)
    service = build_door_service(ctx, ResilientCamera(source, CameraConfig()), relay, outputs=[timed])
    reader.start()
    panel = TestPanel(master, 1, key)
    panel.cp.set_event_handler(lambda _pd, event: arrived.put(time.monotonic()) if event["event"] == Event.CardRead else None)
    try:
        while not reader.link().startswith("secure channel up"):
            time.sleep(0.05)
        service.run(threading.Event())
        reads = []
        while len(reads) < len(timed.sent):
            reads.append(arrived.get(timeout=30))
    finally:
        panel.close()
        reader.close()
        relay.shutdown()
    grants = service.stats.grants
    frame_ms = [(r - f) * 1000 for r, f in zip(reads, timed.frames)]
    send_ms = [(r - s) * 1000 for r, s in zip(reads, timed.sent)]
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"OSDP over a pty, secure channel: {grants} grants, {len(timed.sent)} card reads sent, {len(reads)} arrived at the panel")
    print(f"  granted frame -> card read at the panel: median {statistics.median(frame_ms):.1f} ms, max {max(frame_ms):.1f} ms")
    print(f"  card read queued -> at the panel:        median {statistics.median(send_ms):.1f} ms, max {max(send_ms):.1f} ms")


def wiegand_duration(frames: int) -> None:
    from gpiozero.pins.mock import MockFactory

    from kiosk.config import WiegandConfig
    from kiosk.door.gpio_board import GpiozeroBoard
    from kiosk.door.wiegand import build_wiegand, frame_bits
    from kiosk.storage.credentials import Card

    config = WiegandConfig()
    for length in (26, 34):
        output = build_wiegand(config.model_copy(update={"format": length}), GpiozeroBoard(MockFactory(), "mock"))
        bits = frame_bits(Card(7, 1234), length)
        took = [output.writer.send(bits).seconds * 1000 for _ in range(frames)]
        output.close()
        nominal = ((length - 1) * config.interval_us + config.pulse_us) / 1000
        print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
        print(f"Wiegand {length}-bit, {config.pulse_us} us / {config.interval_us} us: frame {statistics.median(took):.2f} ms median, "
              f"{max(took):.2f} ms max over {frames} frames (nominal {nominal:.2f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="times each person's photo is replayed (grants = people x rounds)")
    parser.add_argument("--frames", type=int, default=30, help="Wiegand frames timed per format")
    args = parser.parse_args()
    wiegand_duration(args.frames)
    osdp_latency(args.people, args.rounds)


if __name__ == "__main__":
    main()
