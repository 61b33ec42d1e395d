"""report documents: the commune's report as an official document, its narrative and sign-off

Revision ID: c7d2e5a91b30
Revises: 2563be205e9a
Create Date: 2026-11-29 22:50:00
"""
from alembic import op
import sqlalchemy as sa
import shared.db


revision = 'c7d2e5a91b30'
down_revision = '2563be205e9a'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('report_document',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('org_unit', sa.String(length=5), nullable=False),
    sa.Column('period', sa.String(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('number', sa.String(length=32), nullable=True),
    sa.Column('narrative', sa.JSON(), nullable=False),
    sa.Column('drafted_by', sa.String(length=120), nullable=False),
    sa.Column('drafted_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('submitted_by', sa.String(length=120), nullable=True),
    sa.Column('submitted_at', shared.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('approved_by', sa.String(length=120), nullable=True),
    sa.Column('approved_at', shared.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('signer_name', sa.String(length=200), nullable=True),
    sa.Column('signed_as', sa.String(length=16), nullable=True),
    sa.Column('sent_by', sa.String(length=120), nullable=True),
    sa.Column('sent_at', shared.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('on_time', sa.Boolean(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_document')),
    sa.UniqueConstraint('org_unit', 'period', 'version', name=op.f('uq_report_document_org_unit_period_version'))
    )


def downgrade() -> None:
    op.drop_table('report_document')
