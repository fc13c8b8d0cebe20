"""mqtt: the event outbox and the seen command nonces

Revision ID: 0005_outbox
Revises: 0006_site (the current head here; the lead re-chains)
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0005_outbox"
down_revision: Union[str, Sequence[str], None] = "0004_credentials"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "mqtt_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mqtt_outbox")),
    )
    op.create_index(op.f("ix_mqtt_outbox_event_id"), "mqtt_outbox", ["event_id"])
    op.create_index(op.f("ix_mqtt_outbox_sent_at"), "mqtt_outbox", ["sent_at"])
    op.create_table(
        "mqtt_command_nonces",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_mqtt_command_nonces")),
    )
    op.create_index(op.f("ix_mqtt_command_nonces_seen_at"), "mqtt_command_nonces", ["seen_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_mqtt_command_nonces_seen_at"), table_name="mqtt_command_nonces")
    op.drop_table("mqtt_command_nonces")
    op.drop_index(op.f("ix_mqtt_outbox_sent_at"), table_name="mqtt_outbox")
    op.drop_index(op.f("ix_mqtt_outbox_event_id"), table_name="mqtt_outbox")
    op.drop_table("mqtt_outbox")
