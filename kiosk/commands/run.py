"""`kiosk run`: the unattended door (what the systemd unit starts), headless or under the door display.

The door itself is built and run by kiosk.door.assembly (start_door, run_door); this module
adds the command line, the printed decisions and the full-screen display. Fail-secure on
every way out: the relay is closed at start-up, when the loop ends, on an exception, on
SIGTERM/SIGHUP (systemd's stop; the relay's own handler closes it first) and on Ctrl-C.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections import Counter
from types import FrameType
from typing import TYPE_CHECKING

import click

from kiosk.commands.base import Lazy, main
from kiosk.door.assembly import Door, RunOptions, run_door, start_door

if TYPE_CHECKING:
    from collections.abc import Callable

    from kiosk.context import KioskContext
    from kiosk.door.status import DoorDecision


# --- hardening (issue 13): a disk already full at start -------------------------------------------
# A door that cannot store its events must stay shut (fail-secure), so the service does not
# start; this exit status is in systemd/kiosk.service's RestartPreventExitStatus=, so systemd
# does not restart it every few seconds into the same full disk: free space, then restart it.
EXIT_DISK_FULL = 75  # EX_TEMPFAIL


def refuse_on_a_full_disk(kiosk: KioskContext) -> None:
    """Say it once and exit EXIT_DISK_FULL when the database could only be opened read-only."""
    from db.session import opened_read_only

    if opened_read_only(kiosk.engine):
        click.echo(
            f"error: disk full: {kiosk.settings.home} cannot store access events, so the door is not started "
            "(it would stay shut); free space on its disk, then start the kiosk again",
            err=True,
        )
        sys.exit(EXIT_DISK_FULL)
# --- end hardening


def run_display(door: Door) -> int:
    """The door loop under the full-screen door display; returns the app's exit status."""
    from kiosk.door.relay import close_on_signals
    from kiosk.ui.door_display import DoorDisplayApp

    app = DoorDisplayApp(door.service)

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        app.stop_event.set()
        app.exit()

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, request_stop)
    close_on_signals(door.relay)  # closes the relay first, then chains to request_stop
    try:
        app.run()
    finally:
        app.stop_event.set()
        door.shutdown()
    if door.service.camera.exhausted:
        return 0  # a replayed folder or file ran out: the demo's normal end, not a fault
    return app.return_code or 0


def print_decision(door: Door, as_json: bool) -> Callable[[DoorDecision], None]:
    def show(decision: DoorDecision) -> None:
        door.tally[("granted: " if decision.granted else "refused: ") + (decision.person or "(unknown)")] += 1
        if as_json:
            click.echo(json.dumps({
                "time": decision.time.isoformat(), "person": decision.person,
                "probability": round(decision.probability, 4), "granted": decision.granted,
                "reason": decision.reason, "track": decision.track_id, "tailgating": decision.tailgating,
            }))
        else:
            verdict = "GRANTED" if decision.granted else "refused"
            flag = "  [tailgating]" if decision.tailgating else ""
            click.echo(
                f"{decision.time.astimezone():%H:%M:%S}  {verdict:7}  {decision.person or '(unknown)':28} "
                f"p={decision.probability:.3f}  track {decision.track_id}  {decision.reason}{flag}"
            )
        sys.stdout.flush()

    return show


def summary(tally: Counter[str]) -> str:
    """Who was let in and who was refused, with counts, in two lines."""
    let_in = sorted((k.removeprefix("granted: "), n) for k, n in tally.items() if k.startswith("granted: "))
    refused = sorted((k.removeprefix("refused: "), n) for k, n in tally.items() if k.startswith("refused: "))
    return f"let in ({sum(n for _, n in let_in)}): {_names(let_in)}\nrefused ({sum(n for _, n in refused)}): {_names(refused)}"


def _names(items: list[tuple[str, int]]) -> str:
    return ", ".join(f"{name} x{n}" if n > 1 else name for name, n in items) or "nobody"


@main.command("run")
@click.option("--camera", help="Camera source: device index, GStreamer pipeline, RTSP URL, video file or image folder (default: camera.source).")
@click.option("--hold", type=click.IntRange(min=1), help="Replayed folders: frames each still is shown for (camera.hold_frames).")
@click.option("--gap", type=click.IntRange(min=0), help="Replayed folders: empty frames between stills (camera.gap_frames).")
@click.option("--fps", type=click.FloatRange(min=0), help="Replays: pace at this frame rate, dropping frames the loop misses (0: every frame).")
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True, help="Replayed folders: play the folder this many times.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per decision on stdout.")
@click.option("--quiet", is_flag=True, help="Do not print decisions (they are in `kiosk audit`).")
@click.option("--display", is_flag=True, help="Show the full-screen door display on this terminal (the box's own screen).")
@click.pass_context
def run_cmd(ctx: click.Context, camera: str | None, hold: int | None, gap: int | None, fps: float | None, repeat: int, as_json: bool, quiet: bool, display: bool) -> None:
    """Watch the door: recognise faces, open for enrolled people, log every decision."""
    kiosk = ctx.find_object(Lazy).kiosk
    refuse_on_a_full_disk(kiosk)
    door = start_door(kiosk, RunOptions(camera, hold, gap, fps, repeat))
    if display:
        ctx.exit(run_display(door))
    if not quiet:
        door.service.add_listener(print_decision(door, as_json))
    stop = threading.Event()
    try:
        run_door(door, stop)
    except KeyboardInterrupt:
        door.relay.close()
        click.echo("interrupted: door closed", err=True)
    stats = door.service.stats
    if door.tally and not (quiet or as_json):
        click.echo(summary(door.tally))
    click.echo(
        f"stopped: {stats.frames} frames ({stats.dropped} dropped), {stats.grants} granted, "
        f"{stats.refusals} refused, {stats.store_failures} not stored; door closed",
        err=True,
    )

