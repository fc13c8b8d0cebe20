"""`kiosk admin`: the admin app; `kiosk admin set-pin`: create or change an admin's PIN."""

from __future__ import annotations

import click

from kiosk.commands.base import Lazy, main, pass_kiosk
from kiosk.errors import KioskError


@main.group(invoke_without_command=True)
@click.pass_context
def admin(ctx: click.Context) -> None:
    """Open the admin app (sign-in first) on this kiosk's database and models."""
    if ctx.invoked_subcommand is not None:
        return
    from kiosk.admin.auth import AdminAuth

    kiosk = ctx.find_object(Lazy).kiosk
    if not AdminAuth(kiosk.sessions).has_credentials():
        raise KioskError("no admin PIN is set yet: run `kiosk admin set-pin` first")
    from kiosk.ui.admin_app import AdminApp

    AdminApp(kiosk).run()


@admin.command("set-pin")
@click.option("--user", default="admin", show_default=True, help="The admin's user name.")
@pass_kiosk
def set_pin(lazy: Lazy, user: str) -> None:
    """Create the admin USER or change their PIN (asked twice, never echoed; stored as argon2)."""
    from kiosk.admin.auth import AdminAuth

    secret = click.prompt("New PIN or password", hide_input=True, confirmation_prompt=True)
    AdminAuth(lazy.kiosk.sessions).set_secret(user, secret, actor=user)
    click.echo(f"PIN set for {user}")
