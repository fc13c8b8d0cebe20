"""`kiosk audit new-key`, `kiosk audit head` and `kiosk audit rekey`: the keyed audit chain's tools.

`head` prints each chain's newest hash, to be kept somewhere the database's writer cannot
reach (a ticket, a log host); `kiosk audit verify --expect-head HASH` later proves that row
is still there (truncation), and the key proves nothing was appended without it.
"""

from __future__ import annotations

from pathlib import Path

import click

from db.audit_chain import CHAINS, rekey, verify_chain
from db.models import AdminAction
from db.session import session_factory
from kiosk.commands.audit import audit
from kiosk.commands.base import Lazy, echo_json, pass_kiosk
from kiosk.errors import ConfigError
from kiosk.storage.audit_key import new_audit_key


@audit.command("new-key")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
def new_key_cmd(path: Path) -> None:
    """Create an audit key at PATH (owner-only, outside the data directory); then set audit.key_file."""
    new_audit_key(path)
    click.echo(f"audit key written to {path}; set audit.key_file (or KIOSK_AUDIT__KEY_FILE) to it, then run `kiosk audit rekey`")


@audit.command("head")
@click.option("--json", "as_json", is_flag=True, help="Print the heads as JSON.")
@pass_kiosk
def head_cmd(lazy: Lazy, as_json: bool) -> None:
    """Print each chain's head hash (after verifying it): keep a copy elsewhere for `verify --expect-head`."""
    with lazy.kiosk.sessions() as session:
        reports = [verify_chain(session, table) for table in CHAINS]
    broken = [r for r in reports if not r.ok]
    if broken:
        raise ConfigError(f"audit chain {broken[0].chain} is BROKEN at {broken[0].broken}: no head to vouch for")
    if as_json:
        echo_json({r.chain: r.head_hash for r in reports})
    else:
        for r in reports:
            click.echo(f"{r.chain} {r.head_hash or 'none'}")


@audit.command("rekey")
@pass_kiosk
def rekey_cmd(lazy: Lazy) -> None:
    """Move an audit log written without a key under audit.key_file (once, after setting the key)."""
    kiosk = lazy.kiosk
    key = kiosk.audit_key
    if key is None:
        raise ConfigError("config: 'audit.key_file' is not set: create a key with `kiosk audit new-key PATH` and set it first")
    sessions = session_factory(kiosk.engine, key)  # not kiosk.sessions: that refuses the unkeyed log this moves
    with sessions.begin() as session:
        heads = rekey(session, key)
        session.add(AdminAction(actor="cli", action="audit rekey", subject=None,
                                details={"unkeyed_heads": {t: old for t, (old, _) in heads.items()}}))
    for table, (old, new) in heads.items():
        click.echo(f"{table}: rekeyed; unkeyed head was {old or 'none'}, keyed head {new or 'none'}")
    click.echo("the rekey is logged as an admin action; run `kiosk audit head` for the new heads to keep")


