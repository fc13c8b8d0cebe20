"""liveness: each event's liveness score, and the liveness thresholds `kiosk calibrate` chose

Revision ID: 0003_liveness
Revises: 0002_trust
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003_liveness"
down_revision: Union[str, Sequence[str], None] = "0002_trust"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("access_events") as batch:
        batch.add_column(sa.Column("liveness", sa.Float(), nullable=True))
    op.create_table(
        "liveness_calibrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detector", sa.String(length=200), nullable=False),
        sa.Column("target_bpcer", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_liveness_calibrations")),
    )


def downgrade() -> None:
    op.drop_table("liveness_calibrations")
    with op.batch_alter_table("access_events") as batch:
        batch.drop_column("liveness")
