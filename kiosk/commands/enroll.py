"""`kiosk enroll NAME PATH...` and `kiosk enroll-batch FOLDER`: store aligned face samples, file
by file, then refresh the face model once so the door knows the new people without a retrain."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kiosk.admin.enrolment import FAILED, STORED, Enroller, EnrollSummary, FileResult
from kiosk.commands.base import Lazy, echo_json, main, refuse_at_a_site_door
from kiosk.errors import KioskError


def _progress(index: int, total: int, result: FileResult) -> None:
    detail = f": {result.reason}" if result.reason else ""
    click.echo(f"[{index}/{total}] {result.status:9} {result.path}{detail}", err=True)


def _refresh(lazy: Lazy, summaries: list[EnrollSummary], refresh: bool) -> dict[str, object] | None:
    """One face model refresh for everyone who had samples stored; said on stderr."""
    from kiosk.training.refresh import refresh_after_enrolment

    people = [s.person for s in summaries if s.count(STORED)]
    if not refresh or not people:
        if people:
            click.echo("face model not refreshed (--no-refresh): the door knows them after the next refresh or retrain", err=True)
        return None
    done = refresh_after_enrolment(lazy.kiosk, people, progress=lambda msg: click.echo(msg, err=True))
    if done is None:
        click.echo("CLIP alone decides at this door: run `kiosk retrain` to use the new samples", err=True)
        return None
    return {"version": done.version, "people": done.people, "samples": done.samples, "encoded": done.encoded, "seconds": round(done.seconds, 2)}


def _say(summary: EnrollSummary) -> None:
    click.echo(
        f"{summary.person}: {summary.count('stored')} stored, "
        f"{summary.count('duplicate')} duplicate, {summary.count(FAILED)} failed"
    )
    for r in summary.results:
        if r.status == FAILED:
            click.echo(f"  failed {r.path}: {r.reason}")


REFRESH_OPTION = click.option(
    "--refresh/--no-refresh", default=True, show_default=True,
    help="Refresh the face model afterwards, so the running door knows the new samples without `kiosk retrain`.",
)


@main.command()
@click.argument("name")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--card", help="Access-panel card FACILITY:NUMBER (or a raw NUMBER) this person already has.")
@REFRESH_OPTION
@click.pass_context
def enroll(ctx: click.Context, name: str, paths: tuple[Path, ...], as_json: bool, card: str | None, refresh: bool) -> None:
    """Enrol NAME from image files and folders. Exit status 1 if any file failed."""
    from kiosk.storage.credentials import assign_free_card, card_holder, parse_card, refuse_reserved_card, set_card

    lazy: Lazy = ctx.find_object(Lazy)
    refuse_at_a_site_door(lazy, "enrolment")
    kiosk = lazy.kiosk
    wanted = parse_card(card) if card is not None else None
    if wanted is not None and card_holder(kiosk.sessions, wanted) not in (None, name.strip()):
        raise KioskError(f"card {wanted} already belongs to {card_holder(kiosk.sessions, wanted)}")
    if wanted is not None:
        refuse_reserved_card(wanted, name.strip(), kiosk.settings.credentials)
    enroller = Enroller(kiosk.sessions, kiosk.detector, kiosk.crops, kiosk.settings.detection.max_side)
    summary = enroller.enroll(name, paths, _progress)
    if wanted is not None:
        set_card(kiosk.sessions, summary.person, wanted, config=kiosk.settings.credentials)
        click.echo(f"{summary.person}: card {wanted}", err=True)
    elif (given := assign_free_card(kiosk.sessions, summary.person, kiosk.settings.credentials)) is not None:
        click.echo(f"{summary.person}: card {given} from the free range", err=True)
    refreshed = _refresh(lazy, [summary], refresh)
    if as_json:
        echo_json(summary.as_dict() | {"refresh": refreshed})
    else:
        _say(summary)
    sys.stdout.flush()
    ctx.exit(0 if summary.ok else 1)


@main.command("enroll-batch")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summaries as JSON on stdout.")
@REFRESH_OPTION
@click.pass_context
def enroll_batch(ctx: click.Context, folder: Path, as_json: bool, refresh: bool) -> None:
    """Enrol everyone in FOLDER: one subfolder per person, named as the person. One refresh at the end.

    Exit status 1 if any file failed.
    """
    if not folder.is_dir():
        raise KioskError(f"not a folder: {folder}")
    people = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not people:
        raise KioskError(f"{folder} holds no person folders (one subfolder per person, named as the person)")
    lazy: Lazy = ctx.find_object(Lazy)
    refuse_at_a_site_door(lazy, "enrolment")
    kiosk = lazy.kiosk
    enroller = Enroller(kiosk.sessions, kiosk.detector, kiosk.crops, kiosk.settings.detection.max_side)
    summaries = []
    for i, person in enumerate(people, 1):
        click.echo(f"({i}/{len(people)}) {person.name}", err=True)
        summaries.append(enroller.enroll(person.name, [person], _progress))
    refreshed = _refresh(lazy, summaries, refresh)
    if as_json:
        echo_json({"people": [s.as_dict() for s in summaries], "refresh": refreshed})
    else:
        for s in summaries:
            _say(s)
    sys.stdout.flush()
    ctx.exit(0 if all(s.ok for s in summaries) else 1)
