"""`kiosk privacy new-key PATH`: the key that encrypts face images at rest."""

from __future__ import annotations

from pathlib import Path

import click

from kiosk.commands.base import Lazy, main, pass_kiosk
from kiosk.storage.crop_store import new_key, require_outside


@main.group()
def privacy() -> None:
    """Biometric data protection."""


@privacy.command("new-key")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@pass_kiosk
def new_key_cmd(lazy: Lazy, path: Path) -> None:
    """Create a crop encryption key at PATH (outside the data directory); set privacy.key_file to it."""
    require_outside(path, lazy.kiosk.settings.home)
    new_key(path)
    click.echo(f"key written to {path}: set privacy.key_file (KIOSK_PRIVACY__KEY_FILE) to it and keep a copy offline")
