"""site: doors, per-door event ids, the site's change counter, artifacts for doors to fetch

On PostgreSQL (a site database) also: a trigger that bumps site_state.version and sends
NOTIFY kiosk_site on every change to what doors replicate (people, training_runs,
calibrations), and row-level security so a door's role sees only its own events and its own
doors row (the roles and grants come from `kiosk site door add`). On SQLite the tables are
created (a door keeps its replica version and upload mark in them) and nothing else.

Revision ID: 0006_site
Revises: 0002_trust
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0006_site"
down_revision: Union[str, Sequence[str], None] = "0005_outbox"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

REPLICATED = ("people", "training_runs", "calibrations")


def upgrade() -> None:
    op.create_table(
        "doors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("location", sa.String(length=200), nullable=False),
        sa.Column("role_name", sa.String(length=63), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_contact", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replica_version", sa.BigInteger(), nullable=True),
        sa.Column("outbox_depth", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_doors")),
        sa.UniqueConstraint("name", name=op.f("uq_doors_name")),
        sa.UniqueConstraint("role_name", name=op.f("uq_doors_role_name")),
    )
    op.create_table(
        "site_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site_state")),
    )
    op.create_table(
        "site_upload_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sent_through", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site_upload_state")),
    )
    op.create_table(
        "site_artifacts",
        sa.Column("training_run_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["training_run_id"], ["training_runs.id"], name=op.f("fk_site_artifacts_training_run_id_training_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("training_run_id", "path", name=op.f("pk_site_artifacts")),
    )
    op.execute("INSERT INTO site_state (id, version) VALUES (1, 0)")
    op.execute("INSERT INTO site_upload_state (id, sent_through) VALUES (1, 0)")
    with op.batch_alter_table("access_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("door_event_id", sa.Integer(), nullable=True))
        batch_op.create_unique_constraint("uq_access_events_door_event", ["door", "door_event_id"])

    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION kiosk_site_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE v bigint;
        BEGIN
            UPDATE site_state SET version = version + 1 WHERE id = 1 RETURNING version INTO v;
            PERFORM pg_notify('kiosk_site', v::text);
            RETURN NULL;
        END $$
        """
    )
    for table in REPLICATED:
        op.execute(
            f"CREATE TRIGGER kiosk_site_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION kiosk_site_changed()"
        )
    # A door's role (doors.role_name) sees and appends only its own events and its own row.
    # The tables' owner (the site's admin role) is not subject to these policies.
    op.execute("ALTER TABLE doors ENABLE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY door_own_row ON doors USING (role_name = current_user)")
    op.execute("ALTER TABLE access_events ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY door_own_events ON access_events "
        "USING (door = (SELECT name FROM doors WHERE role_name = current_user))"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP POLICY door_own_events ON access_events")
        op.execute("ALTER TABLE access_events DISABLE ROW LEVEL SECURITY")
        for table in REPLICATED:
            op.execute(f"DROP TRIGGER kiosk_site_changed ON {table}")
        op.execute("DROP FUNCTION kiosk_site_changed()")
    with op.batch_alter_table("access_events", schema=None) as batch_op:
        batch_op.drop_constraint("uq_access_events_door_event", type_="unique")
        batch_op.drop_column("door_event_id")
    op.drop_table("site_artifacts")
    op.drop_table("site_upload_state")
    op.drop_table("site_state")
    op.drop_table("doors")
