"""`kiosk backup PATH` and `kiosk restore PATH`: an online copy of the data directory, and back."""

from __future__ import annotations

from pathlib import Path

import click

from kiosk.admin.backup import backup, restore
from kiosk.commands.base import Lazy, main, pass_kiosk


@main.command("backup")
@click.argument("path", type=click.Path(path_type=Path, file_okay=False))
@pass_kiosk
def backup_cmd(lazy: Lazy, path: Path) -> None:
    """Copy the database (consistently, while the door runs), crops, thumbnails and models into PATH."""
    report = backup(lazy.kiosk.settings, path, progress=lambda msg: click.echo(msg, err=True))
    click.echo(f"backup written to {path}: {report.files} files")
    for missing in report.missing:
        click.echo(f"  not copied (gone since the snapshot): {missing}")


@main.command("restore")
@click.argument("path", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--force", is_flag=True, help="Replace a data directory that already holds people or events.")
@click.pass_context
def restore_cmd(ctx: click.Context, path: Path, force: bool) -> None:
    """Bring back a backup made by `kiosk backup` (never while the door service runs)."""
    report = restore(ctx.find_object(Lazy).kiosk.settings, path, force, progress=lambda msg: click.echo(msg, err=True))
    for chain in report.chains:
        click.echo(f"{chain.chain}: {chain.rows} rows, " + ("chain verified" if chain.ok else f"BROKEN at {chain.broken}"))
    ctx.exit(0 if all(c.ok for c in report.chains) else 1)
