"""site: the doors also replicate the liveness calibrations

A door decides with the liveness threshold `kiosk calibrate --part liveness` chose (issue 14);
at a site that calibration is made once, centrally, and must reach every door's replica like
the recognition calibrations. On SQLite nothing changes. On PostgreSQL, changes to
liveness_calibrations bump the site version and NOTIFY the doors, and the doors already
registered may read the table (`kiosk site door add` grants it to new ones).

Revision ID: 0008_site_liveness
Revises: 0007_site_cards_threshold
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0008_site_liveness"
down_revision: Union[str, Sequence[str], None] = "0007_site_cards_threshold"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TABLE = "liveness_calibrations"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"CREATE TRIGGER kiosk_site_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {TABLE} "
        "FOR EACH STATEMENT EXECUTE FUNCTION kiosk_site_changed()"
    )
    _grant_doors("GRANT SELECT ON {table} TO {role}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _grant_doors("REVOKE SELECT ON {table} FROM {role}")
    op.execute(f"DROP TRIGGER kiosk_site_changed ON {TABLE}")


def _grant_doors(statement: str) -> None:
    """Run a GRANT or REVOKE on the table for every registered door's role."""
    for role in op.get_bind().execute(sa.text("SELECT role_name FROM doors")).scalars().all():
        op.execute(statement.format(table=TABLE, role=f'"{role}"'))
