"""`kiosk demo [PEOPLE] [--strangers DIR]`: the kiosk's main job end to end on a folder of photos.

Enrols each person (one subfolder each) from the first 80% of their photos, trains the face
model, then runs the real door service (`kiosk run`'s code) with a replayed folder as the
camera and gpiozero's mock pins as the lock: each held-back photo, then each stranger's photo,
is one visit. Every decision is printed with who was really shown, then a summary. The
cooldown is 0 here so that every photo is judged on its own. The data directory is left as it
is (`kiosk audit` reads its events); the last line says where it is, how big, and how to delete it.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from pathlib import Path

import click

from kiosk.commands.base import Lazy, pass_kiosk
from kiosk.commands.base import main as cli_main
from kiosk.errors import KioskError
from kiosk.vision.images import image_files

DEFAULT_PEOPLE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "faces-dev"
DEFAULT_PAD = DEFAULT_PEOPLE.with_name("pad-dev")
STRANGER = "stranger"
ATTACK_PEOPLE_SOURCE = "rienheuver"  # pad-dev's source with each person live, printed and on a screen


def _people(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise KioskError(f"demo: no such folder: {folder}")
    people = sorted(p for p in folder.iterdir() if p.is_dir() and image_files(p, recursive=False))
    if not people:
        raise KioskError(f"demo: {folder} has no subfolders of photos (one folder per person)")
    return people


@cli_main.command("demo")
@click.argument("people", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--strangers", type=click.Path(path_type=Path, file_okay=False), help="Folder of people never enrolled (default: PEOPLE-strangers beside PEOPLE, if any).")
@click.option("--enrol-fraction", type=click.FloatRange(0.1, 0.95), default=0.8, show_default=True, help="Share of each person's photos enrolled; the rest come to the door.")
@click.option("--attacks", "attacks", is_flag=True, help="Also enrol pad-dev's rienheuver people from their live photo, then show the door each one live, on a phone screen and printed.")
@click.option("--pad-dev", "pad_dev", type=click.Path(path_type=Path, file_okay=False), default=DEFAULT_PAD, show_default=True, help="The pad-dev folder --attacks reads.")
@pass_kiosk
def demo(lazy: Lazy, people: Path | None, strangers: Path | None, enrol_fraction: float, attacks: bool, pad_dev: Path) -> None:
    """Enrol a folder of people, then let their held-back photos and strangers come to the door."""
    from sqlalchemy import select

    from db.models import AccessEvent
    from kiosk.admin.enrolment import Enroller
    from kiosk.door.assembly import RunOptions, run_door, start_door
    from kiosk.training.retrain import retrain

    people_dir = (people or DEFAULT_PEOPLE).resolve()
    strangers_dir = strangers or people_dir.with_name(people_dir.name + "-strangers")
    if strangers is not None and not strangers_dir.is_dir():
        raise KioskError(f"demo: no such folder: {strangers_dir}")
    kiosk = lazy.kiosk
    settings = kiosk.settings
    settings.door_hardware = settings.door_hardware.model_copy(update={"pin_factory": "mock"})
    settings.policy = settings.policy.model_copy(update={"cooldown_seconds": 0.0})
    replay = settings.home / "demo-replay"
    if replay.exists():
        raise KioskError(f"demo: {settings.home} was used before; give the demo a fresh data directory")

    enrolled = _people(people_dir)
    enroller = Enroller(kiosk.sessions, kiosk.detector, kiosk.crops)
    shown: list[tuple[str, Path]] = []
    click.echo(f"enrolling {len(enrolled)} people from {people_dir} ({enrol_fraction:.0%} of each one's photos)")
    for i, person in enumerate(enrolled, 1):
        files = image_files(person, recursive=False)
        cut = min(max(1, math.floor(len(files) * enrol_fraction)), len(files) - 1) if len(files) > 1 else 1
        summary = enroller.enroll(person.name, files[:cut], actor="demo")
        shown += [(person.name, f) for f in files[cut:]]
        click.echo(f"  [{i}/{len(enrolled)}] {person.name}: {summary.count('stored')} enrolled, {len(files) - cut} held back")
    if attacks:
        shown += _enrol_attack_people(enroller, pad_dev)
    click.echo("training the face model ...")
    versions = retrain(kiosk, actor="demo").runs
    click.echo("  " + ", ".join(f"{k} model v{v}" for k, v in versions.items()))
    if strangers_dir.is_dir():
        shown += [(STRANGER, f) for s in _people(strangers_dir) for f in image_files(s, recursive=False)]
    replay.mkdir(parents=True, mode=0o700)
    truth: dict[str, tuple[str, Path]] = {}
    for i, (who, photo) in enumerate(shown):
        if who.startswith(ATTACK_PEOPLE_SOURCE):
            name = f"{i:05d}.png"
            _write_on_canvas(photo, replay / name)
        else:
            name = f"{i:05d}.{photo.suffix.lstrip('.')}"
            (replay / name).symlink_to(photo.resolve())
        truth[name] = (who, photo)
    n_strangers = sum(w == STRANGER for w, _ in shown)
    n_pad = sum(w.startswith(ATTACK_PEOPLE_SOURCE) for w, _ in shown)
    click.echo(f"the door: {len(shown) - n_strangers - n_pad} held-back photos of enrolled people, then {n_strangers} of strangers"
               + (f", then {n_pad} pad-dev visits (live, screen, print)" if n_pad else "") + "\n")

    door = start_door(kiosk, RunOptions(camera=str(replay)))
    setup = door.service.liveness_setup
    click.echo(setup.reason if setup else "liveness: off (models not configured): a photo of an enrolled person opens this door")
    outcome: dict[str, list[tuple[bool, str | None]]] = defaultdict(list)  # photo -> decisions

    def show(decision) -> None:
        with kiosk.sessions() as session:
            event = session.scalars(select(AccessEvent).order_by(AccessEvent.id.desc()).limit(1)).one()
        label = event.details.get("frame", "")
        who, photo = truth.get(label, ("?", Path(label)))
        outcome[label].append((decision.granted, decision.person))
        verdict = "LET IN " if decision.granted else "refused"
        named = decision.person or "(unknown)"
        shown_as = f"{photo.parent.name}/{photo.name}" + (" (stranger)" if who == STRANGER else "")
        mark = "" if (decision.granted and decision.person == who) or (not decision.granted and who == STRANGER) else "   <-- wrong" if decision.granted else "   <-- missed"
        flag = " [tailgating]" if decision.tailgating else ""
        if event.liveness is not None:
            flag += f" [liveness {event.liveness:.2f}]"
        if who.startswith(ATTACK_PEOPLE_SOURCE):  # --attacks: right means live in, pictures out
            kind = who.split(":")[1]
            shown_as = f"{kind} of {who.split(':')[2]}"
            mark = "" if decision.granted == (kind == "live") else "   <-- wrong" if decision.granted else "   <-- missed"
        click.echo(f"{verdict}  {named:26} p={decision.probability:.2f}  shown {shown_as:38} {decision.reason}{flag}{mark}")

    door.service.add_listener(show)
    run_door(door, threading.Event())

    _summary(truth, outcome, door.service.stats)
    home = settings.home
    size_mb = sum(p.stat().st_size for p in home.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6
    click.echo(f"  the demo's data (face crops, models, the database) stays in {home}: {size_mb:.1f} MB; delete it with: rm -r {home}")


def _summary(truth: dict[str, tuple[str, Path]], outcome: dict[str, list[tuple[bool, str | None]]], stats) -> None:
    people: dict[str, list[bool]] = defaultdict(list)
    pad: dict[str, list[bool]] = defaultdict(list)  # --attacks: live / print / replay -> let in per visit
    strangers_in: list[str] = []
    wrong: list[str] = []
    n_strangers = 0
    for label, (who, photo) in truth.items():
        decisions = outcome.get(label, [])
        grants = [p for g, p in decisions if g]
        if who.startswith(ATTACK_PEOPLE_SOURCE):
            pad[who.split(":")[1]].append(bool(grants))
        elif who == STRANGER:
            n_strangers += 1
            if grants:
                strangers_in.append(f"{photo.parent.name}/{photo.name} as {grants[0]}")
        else:
            people[who].append(who in grants)
            wrong += [f"{photo.parent.name}/{photo.name} as {p}" for p in grants if p != who]
    let_in = sorted(p for p, ok in people.items() if any(ok))
    never = sorted(p for p, ok in people.items() if not any(ok))
    visits = sum(len(v) for v in people.values())
    granted = sum(sum(v) for v in people.values())
    click.echo("\nsummary")
    click.echo(f"  let in:  {len(let_in)} of {len(people)} enrolled people ({granted} of {visits} held-back photos)")
    click.echo(f"  refused: {n_strangers - len(strangers_in)} of {n_strangers} stranger photos")
    if never:
        click.echo(f"  enrolled but never let in: {', '.join(never)}")
    for line in strangers_in + wrong:
        click.echo(f"  WRONGLY LET IN: {line}")
    for kind, let in sorted(pad.items()):  # a picture with no face found never reaches a decision
        click.echo(f"  pad-dev {kind}: {sum(let)} of {len(let)} let in")
    click.echo(f"  {stats.frames} frames, {stats.grants} grants, {stats.refusals} refusals; `kiosk audit` lists every event")


def _enrol_attack_people(enroller, pad_dev: Path) -> list[tuple[str, Path]]:
    """Enrol each pad-dev rienheuver person from their live photo; return their visits: live, screen, paper."""
    live_dir = pad_dev / "bona_fide" / ATTACK_PEOPLE_SOURCE
    if not live_dir.is_dir():
        raise KioskError(f"demo: no pad-dev {ATTACK_PEOPLE_SOURCE} folder under {pad_dev}")
    visits: list[tuple[str, Path]] = []
    click.echo(f"enrolling pad-dev's {ATTACK_PEOPLE_SOURCE} people from their live photo (then shown live, on a screen, printed)")
    for live in image_files(live_dir, recursive=False):
        name = f"{ATTACK_PEOPLE_SOURCE}-{live.stem}"
        if not enroller.enroll(name, [live], actor="demo").ok:
            click.echo(f"  {name}: no face found in the live photo, skipped")
            continue
        for kind, photo in (("live", live), ("replay", pad_dev / "attack" / ATTACK_PEOPLE_SOURCE / "screen" / live.name),
                            ("print", pad_dev / "attack" / ATTACK_PEOPLE_SOURCE / "paper" / live.name)):
            visits.append((f"{ATTACK_PEOPLE_SOURCE}:{kind}:{name}", photo))
    return visits


def _write_on_canvas(photo: Path, dest: Path) -> None:
    """A tight face crop as a camera would frame it: on a grey canvas (pad-dev's README)."""
    import cv2

    from calibration.liveness import on_canvas
    from kiosk.vision.images import read_image

    cv2.imwrite(str(dest), on_canvas(read_image(photo))[0])
