"""case process, the rest of the steps (issue 17): the temporary care's end watched; a plan task on its assignment;
a report linked to an earlier one of the same child

Revision ID: b3e91f04c7d2
Revises: a17c0de5e2b1
Create Date: 2026-11-30 06:00:00.000000
"""

from alembic import op
import sqlalchemy as sa
import shared.db


revision = "b3e91f04c7d2"
down_revision = "a17c0de5e2b1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("routed_incident", schema=None) as batch_op:
        batch_op.add_column(sa.Column("care_ends_at", shared.db.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("care_overdue_at", shared.db.UtcDateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_routed_incident_care_watch", ["care_overdue_at", "care_ends_at"], unique=False)
        batch_op.add_column(sa.Column("linked_to", sa.String(length=36), nullable=True))
    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("task", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.drop_column("task")
    with op.batch_alter_table("routed_incident", schema=None) as batch_op:
        batch_op.drop_column("linked_to")
        batch_op.drop_index("ix_routed_incident_care_watch")
        batch_op.drop_column("care_overdue_at")
        batch_op.drop_column("care_ends_at")
