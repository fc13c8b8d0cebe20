"""`kiosk config show`: the configuration in force, as commented TOML."""

from __future__ import annotations

import click

from kiosk.commands.base import Lazy, main, pass_kiosk
from kiosk.config import to_toml


@main.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("show")
@pass_kiosk
def show(lazy: Lazy) -> None:
    """Print the configuration in force (file + environment + defaults) as TOML."""
    click.echo(to_toml(lazy.kiosk.settings), nl=False)
