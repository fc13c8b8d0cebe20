"""site: the doors also replicate people's cards and the admin's threshold override

A door on an access panel sends the granted person's card, and every door applies the
threshold the admin set: both must reach the doors' replicas. On SQLite this only creates the
one-row threshold_overrides table (a door holds the site's copy there). On PostgreSQL, changes
to credentials and threshold_overrides also bump the site version and NOTIFY the doors, and the
doors already registered may read both tables (`kiosk site door add` grants it to new ones).

Revision ID: 0007_site_cards_threshold
Revises: 0006_site
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0007_site_cards_threshold"
down_revision: Union[str, Sequence[str], None] = "0006_site"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

REPLICATED = ("credentials", "threshold_overrides")


def upgrade() -> None:
    op.create_table(
        "threshold_overrides",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("set_by", sa.String(length=100), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_threshold_overrides")),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in REPLICATED:
        op.execute(
            f"CREATE TRIGGER kiosk_site_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION kiosk_site_changed()"
        )
    _grant_doors("GRANT SELECT ON {tables} TO {role}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _grant_doors("REVOKE SELECT ON {tables} FROM {role}")
        for table in REPLICATED:
            op.execute(f"DROP TRIGGER kiosk_site_changed ON {table}")
    op.drop_table("threshold_overrides")


def _grant_doors(statement: str) -> None:
    """Run a GRANT or REVOKE on the replicated tables for every registered door's role."""
    roles = op.get_bind().execute(sa.text("SELECT role_name FROM doors")).scalars().all()
    for role in roles:
        op.execute(statement.format(tables=", ".join(REPLICATED), role=f'"{role}"'))
