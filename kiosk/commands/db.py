"""`kiosk db upgrade`: apply the schema migrations (also done on every first start)."""

from __future__ import annotations

import click

from db.session import current_revision
from kiosk.commands.base import Lazy, main, pass_kiosk


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@pass_kiosk
def upgrade_cmd(lazy: Lazy) -> None:
    """Migrate the database to the current schema."""
    engine = lazy.kiosk.engine  # building the engine migrates it
    click.echo(f"database at revision {current_revision(engine)}: {engine.url.render_as_string(hide_password=True)}")
