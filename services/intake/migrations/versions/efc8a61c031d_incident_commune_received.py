"""incident by commune and time received: the duplicate check's window read (issue 17)

Revision ID: efc8a61c031d
Revises: 92e8fd19fa41
Create Date: 2026-11-30 02:40:00.000000
"""
from alembic import op


revision = 'efc8a61c031d'
down_revision = '92e8fd19fa41'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.create_index('ix_incident_commune_received', ['commune_code', 'received_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.drop_index('ix_incident_commune_received')
