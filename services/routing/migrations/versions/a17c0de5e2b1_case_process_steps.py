"""case process steps (Decree 56/2017, issue 17): the step on routed_incident, step_change, process_record

Revision ID: a17c0de5e2b1
Revises: 9d363aa1d27f
Create Date: 2026-11-30 03:20:00.000000

Incidents routed before this revision get step `received` and no watched deadline (no backfill: their 12 hours
are long past, and escalating them all at once on deploy would tell the chairman nothing useful).
"""

from alembic import op
import sqlalchemy as sa
import shared.db


revision = "a17c0de5e2b1"
down_revision = "9d363aa1d27f"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("routed_incident", schema=None) as batch_op:
        batch_op.add_column(sa.Column("step", sa.String(length=32), server_default="received", nullable=False))
        batch_op.add_column(sa.Column("step_due_at", shared.db.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("step_overdue_at", shared.db.UtcDateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_routed_incident_step_watch", ["step_overdue_at", "step_due_at"], unique=False)

    op.create_table(
        "step_change",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.String(length=36), nullable=False),
        sa.Column("at", shared.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("from_step", sa.String(length=32), nullable=False),
        sa.Column("to_step", sa.String(length=32), nullable=False),
        sa.Column("principal", sa.String(length=120), nullable=False),
        sa.Column("record_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["routed_incident.incident_id"], name=op.f("fk_step_change_incident_id_routed_incident")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_step_change")),
    )
    with op.batch_alter_table("step_change", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_step_change_incident_id"), ["incident_id"], unique=False)

    op.create_table(
        "process_record",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("incident_id", sa.String(length=36), nullable=False),
        sa.Column("form", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("recorded_by", sa.String(length=120), nullable=False),
        sa.Column("recorded_at", shared.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["routed_incident.incident_id"], name=op.f("fk_process_record_incident_id_routed_incident")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_process_record")),
    )
    with op.batch_alter_table("process_record", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_process_record_incident_id"), ["incident_id"], unique=False)
        batch_op.create_index("uq_process_record_version", ["incident_id", "form", "version"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("process_record", schema=None) as batch_op:
        batch_op.drop_index("uq_process_record_version")
        batch_op.drop_index(batch_op.f("ix_process_record_incident_id"))
    op.drop_table("process_record")
    with op.batch_alter_table("step_change", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_step_change_incident_id"))
    op.drop_table("step_change")
    with op.batch_alter_table("routed_incident", schema=None) as batch_op:
        batch_op.drop_index("ix_routed_incident_step_watch")
        batch_op.drop_column("step_overdue_at")
        batch_op.drop_column("step_due_at")
        batch_op.drop_column("step")
