"""`kiosk audit`: query the access events by time, person and decision, as a table, CSV or JSON."""

from __future__ import annotations

import csv
import sys
from datetime import datetime, timezone

import click
from sqlalchemy import select

from db.models import AccessEvent
from kiosk.cli import Lazy, echo_json, main


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not an ISO date or time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


EVENT_FIELDS = ["id", "time", "door", "person", "probability", "granted", "reason", "recogniser", "model_version", "tailgating"]


def event_row(e: AccessEvent) -> dict[str, object]:
    return {
        "id": e.id,
        "time": e.time.isoformat(),
        "door": e.door,
        "person": e.person_name,
        "probability": e.probability,
        "granted": e.granted,
        "reason": e.reason,
        "recogniser": e.recogniser,
        "model_version": e.model_version,
        "tailgating": e.tailgating,
    }


@main.group(invoke_without_command=True)
@click.option("--since", help="Only events at or after this ISO time (UTC unless it says otherwise).")
@click.option("--until", help="Only events before this ISO time.")
@click.option("--person", help="Only events naming this person.")
@click.option("--decision", type=click.Choice(["granted", "refused"]), help="Only grants or only refusals.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--limit", type=int, default=0, help="At most this many of the newest events (0: all).")
@click.pass_context
def audit(ctx: click.Context, since: str | None, until: str | None, person: str | None, decision: str | None, fmt: str, limit: int) -> None:
    """Query the access events (the audit trail of the door)."""
    if ctx.invoked_subcommand is not None:
        return
    query = select(AccessEvent).order_by(AccessEvent.time, AccessEvent.id)
    if (start := _when(since)) is not None:
        query = query.where(AccessEvent.time >= start)
    if (end := _when(until)) is not None:
        query = query.where(AccessEvent.time < end)
    if person:
        query = query.where(AccessEvent.person_name == person)
    if decision:
        query = query.where(AccessEvent.granted.is_(decision == "granted"))
    with ctx.find_object(Lazy).kiosk.sessions() as session:
        rows = [event_row(e) for e in session.scalars(query)]
    if limit:
        rows = rows[-limit:]
    if fmt == "json":
        echo_json(rows)
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=EVENT_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    else:
        for r in rows:
            prob = "-" if r["probability"] is None else f"{r['probability']:.3f}"
            verdict = "GRANTED" if r["granted"] else "refused"
            click.echo(f"{r['time'][:19]}  {r['door']:8} {verdict:8} {prob:>6}  {r['person'] or '(unknown)':30} {r['reason']}")
        if not rows:
            click.echo("no events match")
