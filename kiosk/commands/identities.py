"""`kiosk identities [remove NAME]`: who is enrolled, and erasing a person."""

from __future__ import annotations

import click

from kiosk.admin.enrolment import list_identities
from kiosk.admin.erasure import BACKUPS_KEEP, forget_person
from kiosk.commands.base import Lazy, echo_json, main, pass_kiosk, refuse_at_a_site_door
from kiosk.errors import KioskError


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.pass_context
def identities(ctx: click.Context, as_json: bool) -> None:
    """List enrolled people with their sample counts."""
    if ctx.invoked_subcommand is not None:
        return
    from kiosk.storage.credentials import all_cards

    sessions = ctx.find_object(Lazy).kiosk.sessions
    people = list_identities(sessions)
    cards = all_cards(sessions)
    for p in people:
        p["card"] = cards.get(str(p["name"]))
    if as_json:
        echo_json(people)
        return
    if not people:
        click.echo("nobody is enrolled")
    for p in people:
        card = f"  card {p['card']}" if p["card"] else ""
        click.echo(f"{p['name']:40} {p['samples']:4} samples{card}")


@identities.command("remove")
@click.argument("name")
@pass_kiosk
def remove(lazy: Lazy, name: str) -> None:
    """Erase NAME: samples, crops, features, event thumbnails and every model version holding them."""
    refuse_at_a_site_door(lazy, "erasure")
    report = forget_person(lazy.kiosk, name, progress=lambda msg: click.echo(msg, err=True))
    rebuilt = f"; face model v{report.rebuilt_face_version} in force without them" if report.rebuilt_face_version else ""
    click.echo(f"removed {report.name}: {report.samples} samples erased{rebuilt}")
    click.echo(f"  {BACKUPS_KEEP}")


@identities.command("card")
@click.argument("name")
@click.argument("card", required=False)
@click.option("--free", is_flag=True, help="Give NAME the next number of the configured free range instead.")
@pass_kiosk
def card(lazy: Lazy, name: str, card: str | None, free: bool) -> None:
    """Set the access-panel card NAME stands for: FACILITY:NUMBER, a raw NUMBER, or --free."""
    refuse_at_a_site_door(lazy, "setting a card")
    from kiosk.storage.credentials import assign_free_card, card_for, parse_card, set_card

    sessions = lazy.kiosk.sessions
    if free == (card is not None):
        raise KioskError("give either a card (FACILITY:NUMBER or NUMBER) or --free")
    if card is not None:
        previous = set_card(sessions, name, parse_card(card), config=lazy.kiosk.settings.credentials)
        click.echo(f"{name}: card {parse_card(card)}" + (f" (was {previous})" if previous else ""))
        return
    settings = lazy.kiosk.settings.credentials
    if settings.free_first is None:
        raise KioskError("no free card range is configured ([credentials] free_first, free_last)")
    given = assign_free_card(sessions, name, settings)
    click.echo(f"{name}: card {given} from the free range" if given else f"{name} already has card {card_for(sessions, name)}")
