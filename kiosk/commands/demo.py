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
STRANGER = "stranger"


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
@pass_kiosk
def demo(lazy: Lazy, people: Path | None, strangers: Path | None, enrol_fraction: float) -> None:
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
    click.echo("training the face model ...")
    versions = retrain(kiosk, actor="demo").runs
    click.echo("  " + ", ".join(f"{k} model v{v}" for k, v in versions.items()))
    if strangers_dir.is_dir():
        shown += [(STRANGER, f) for s in _people(strangers_dir) for f in image_files(s, recursive=False)]
    replay.mkdir(parents=True, mode=0o700)
    for i, (who, photo) in enumerate(shown):
        (replay / f"{i:05d}.{photo.suffix.lstrip('.')}").symlink_to(photo.resolve())
    truth = {f"{i:05d}.{photo.suffix.lstrip('.')}": (who, photo) for i, (who, photo) in enumerate(shown)}
    n_strangers = sum(w == STRANGER for w, _ in shown)
    click.echo(f"the door: {len(shown) - n_strangers} held-back photos of enrolled people, then {n_strangers} of strangers\n")

    door = start_door(kiosk, RunOptions(camera=str(replay)))
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
        click.echo(f"{verdict}  {named:26} p={decision.probability:.2f}  shown {shown_as:38} {decision.reason}{flag}{mark}")

    door.service.add_listener(show)
    run_door(door, threading.Event())

    _summary(truth, outcome, door.service.stats)
    home = settings.home
    size_mb = sum(p.stat().st_size for p in home.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6
    click.echo(f"  the demo's data (face crops, models, the database) stays in {home}: {size_mb:.1f} MB; delete it with: rm -r {home}")


def _summary(truth: dict[str, tuple[str, Path]], outcome: dict[str, list[tuple[bool, str | None]]], stats) -> None:
    people: dict[str, list[bool]] = defaultdict(list)
    strangers_in: list[str] = []
    wrong: list[str] = []
    n_strangers = 0
    for label, (who, photo) in truth.items():
        decisions = outcome.get(label, [])
        grants = [p for g, p in decisions if g]
        if who == STRANGER:
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
    click.echo(f"  {stats.frames} frames, {stats.grants} grants, {stats.refusals} refusals; `kiosk audit` lists every event")
