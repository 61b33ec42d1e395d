"""report reminders: one marker per report.due published (commune, plan period, days before the due date)

Revision ID: d4e1a7c3b2f9
Revises: 50576aea377a
Create Date: 2026-11-30 04:00:00
"""
from alembic import op
import sqlalchemy as sa
import shared.db


revision = 'd4e1a7c3b2f9'
down_revision = '50576aea377a'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('report_reminder',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('org_unit', sa.String(length=5), nullable=False),
    sa.Column('period', sa.String(length=16), nullable=False),
    sa.Column('days_before', sa.Integer(), nullable=False),
    sa.Column('due', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('sent_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_reminder')),
    sa.UniqueConstraint('org_unit', 'period', 'days_before', name=op.f('uq_report_reminder_org_unit_period_days_before'))
    )


def downgrade() -> None:
    op.drop_table('report_reminder')
