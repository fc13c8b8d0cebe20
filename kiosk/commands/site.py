"""`kiosk site ...`: prepare a site database, register its doors, see how each is doing.

Run with ``database.url`` pointing at the site database, as its admin role (the tables' owner).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import click

from kiosk.commands.base import Lazy, echo_json, main, pass_kiosk


@main.group()
def site() -> None:
    """A site of many doors on one PostgreSQL database."""


@site.command("init")
@pass_kiosk
def init_cmd(lazy: Lazy) -> None:
    """Create or migrate the site database's schema (triggers and row-level security included)."""
    from kiosk.site.roles import require_postgres

    engine = lazy.kiosk.engine  # building the engine migrates it
    require_postgres(engine)
    from db.session import current_revision

    click.echo(f"site database ready at revision {current_revision(engine)}: {engine.url.render_as_string(hide_password=True)}")


@site.group("door")
def door() -> None:
    """Register doors."""


@door.command("add")
@click.argument("name")
@click.option("--location", default="", help="Where the door is (shown in `kiosk site doors`).")
@click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the door role's password here (0600) instead of printing it.")
@pass_kiosk
def door_add(lazy: Lazy, name: str, location: str, password_file: Path | None) -> None:
    """Register door NAME and create its database role (it reads what doors replicate, appends its own events)."""
    from kiosk.site.roles import add_door

    kiosk = lazy.kiosk
    record, password = add_door(kiosk.engine, kiosk.sessions, name, location)
    click.echo(f"door {record.name!r} registered; database role {record.role_name}")
    if password_file is not None:
        password_file.touch(mode=0o600)
        password_file.write_text(password + "\n")
        click.echo(f"its password is in {password_file}: copy it to the door and set site.password_file")
    else:
        click.echo(f"password (shown once; put it in the door's site.password_file): {password}")


@site.command("doors")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per door.")
@pass_kiosk
def doors_cmd(lazy: Lazy, as_json: bool) -> None:
    """Every door with its last contact, replica version (against the site's) and outbox depth."""
    from kiosk.site.roles import DOOR_COLUMNS, list_doors

    kiosk = lazy.kiosk
    rows = list_doors(kiosk.engine, kiosk.sessions)
    if as_json:
        echo_json([{"name": d.name, "location": d.location, "role": d.role, "last_contact": d.last_contact,
                    "replica_version": d.replica_version, "site_version": d.site_version,
                    "replica_current": d.replica_current, "outbox_depth": d.outbox_depth} for d in rows])
        return
    if not rows:
        click.echo("no doors registered (kiosk site door add NAME --location ...)")
        return
    now = datetime.now(timezone.utc)
    for name, location, seen, replica, outbox in [DOOR_COLUMNS, *(d.cells(now) for d in rows)]:
        click.echo(f"{name:16} {location[:20]:20} {seen:>14} {replica:>12} {outbox:>7}")
