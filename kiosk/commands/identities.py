"""`kiosk identities [remove NAME]`: who is enrolled, and erasing a person."""

from __future__ import annotations

import click

from kiosk.admin.enrolment import list_identities
from kiosk.admin.erasure import BACKUPS_KEEP, forget_person
from kiosk.commands.base import Lazy, echo_json, main, pass_kiosk


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.pass_context
def identities(ctx: click.Context, as_json: bool) -> None:
    """List enrolled people with their sample counts."""
    if ctx.invoked_subcommand is not None:
        return
    people = list_identities(ctx.find_object(Lazy).kiosk.sessions)
    if as_json:
        echo_json(people)
        return
    if not people:
        click.echo("nobody is enrolled")
    for p in people:
        click.echo(f"{p['name']:40} {p['samples']:4} samples")


@identities.command("remove")
@click.argument("name")
@pass_kiosk
def remove(lazy: Lazy, name: str) -> None:
    """Erase NAME: samples, crops, features, event thumbnails and every model version holding them."""
    report = forget_person(lazy.kiosk, name, progress=lambda msg: click.echo(msg, err=True))
    rebuilt = f"; face model v{report.rebuilt_face_version} in force without them" if report.rebuilt_face_version else ""
    click.echo(f"removed {report.name}: {report.samples} samples erased{rebuilt}")
    click.echo(f"  {BACKUPS_KEEP}")
