"""`kiosk enroll NAME PATH...`: store aligned face samples for a person, file by file."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kiosk.admin.enrolment import FAILED, Enroller, FileResult
from kiosk.commands.base import Lazy, echo_json, main
from kiosk.errors import KioskError


@main.command()
@click.argument("name")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--card", help="Access-panel card FACILITY:NUMBER (or a raw NUMBER) this person already has.")
@click.pass_context
def enroll(ctx: click.Context, name: str, paths: tuple[Path, ...], as_json: bool, card: str | None) -> None:
    """Enrol NAME from image files and folders. Exit status 1 if any file failed."""
    from kiosk.storage.credentials import assign_free_card, card_holder, parse_card, set_card

    lazy: Lazy = ctx.find_object(Lazy)
    kiosk = lazy.kiosk
    wanted = parse_card(card) if card is not None else None
    if wanted is not None and card_holder(kiosk.sessions, wanted) not in (None, name.strip()):
        raise KioskError(f"card {wanted} already belongs to {card_holder(kiosk.sessions, wanted)}")
    enroller = Enroller(kiosk.sessions, kiosk.detector, kiosk.crops, kiosk.settings.detection.max_side)

    def progress(index: int, total: int, result: FileResult) -> None:
        detail = f": {result.reason}" if result.reason else ""
        click.echo(f"[{index}/{total}] {result.status:9} {result.path}{detail}", err=True)

    summary = enroller.enroll(name, paths, progress)
    if wanted is not None:
        set_card(kiosk.sessions, summary.person, wanted)
        click.echo(f"{summary.person}: card {wanted}", err=True)
    elif (given := assign_free_card(kiosk.sessions, summary.person, kiosk.settings.credentials)) is not None:
        click.echo(f"{summary.person}: card {given} from the free range", err=True)
    if as_json:
        echo_json(summary.as_dict())
    else:
        click.echo(
            f"{summary.person}: {summary.count('stored')} stored, "
            f"{summary.count('duplicate')} duplicate, {summary.count(FAILED)} failed"
        )
        for r in summary.results:
            if r.status == FAILED:
                click.echo(f"  failed {r.path}: {r.reason}")
    sys.stdout.flush()
    ctx.exit(0 if summary.ok else 1)


