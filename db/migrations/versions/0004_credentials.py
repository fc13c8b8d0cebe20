"""credentials: the card number each person stands for at an access panel (OSDP, Wiegand)

Revision ID: 0004_credentials
Revises: 0002_trust
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0004_credentials"
down_revision: Union[str, Sequence[str], None] = "0003_liveness"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "credentials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("card", sa.String(length=40), nullable=False),
        sa.Column("facility", sa.Integer(), nullable=True),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_credentials_person_id_people"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credentials")),
        sa.UniqueConstraint("card", name=op.f("uq_credentials_card")),
        sa.UniqueConstraint("person_id", name=op.f("uq_credentials_person_id")),
    )


def downgrade() -> None:
    op.drop_table("credentials")
