"""people, sign-in attempts, expiring tokens, the audit naming a person

Revision ID: a7c3e1d2b9f4
Revises: f53aace3ea25
Create Date: 2026-11-29 19:30:00.000000
"""
from datetime import datetime, timedelta, timezone

from alembic import op
import sqlalchemy as sa
import shared.db


revision = 'a7c3e1d2b9f4'
down_revision = 'f53aace3ea25'
branch_labels = None
depends_on = None

# No token lives longer than this (shared.auth.MAX_TOKEN_DAYS, copied: a migration never changes).
MAX_DAYS = 365


def upgrade() -> None:
    op.create_table('person',
    sa.Column('username', sa.String(length=64), nullable=False, comment='NFC, case-folded: unique whatever the case typed'),
    sa.Column('full_name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('subject', sa.String(length=120), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=True),
    sa.Column('must_change_password', sa.Boolean(), nullable=False),
    sa.Column('created_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('changed_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('changed_by', sa.String(length=120), nullable=False),
    sa.PrimaryKeyConstraint('username', name=op.f('pk_person'))
    )
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.create_index('ix_person_subject', ['kind', 'subject'], unique=False)

    op.create_table('sign_in_attempt',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False, comment="the person's username, or 'unknown:' and a digest of a name nobody has"),
    sa.Column('at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False, comment='ok | failed | lockout | locked'),
    sa.Column('address', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sign_in_attempt'))
    )
    with op.batch_alter_table('sign_in_attempt', schema=None) as batch_op:
        batch_op.create_index('ix_sign_in_attempt_username', ['username', 'at'], unique=False)

    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.add_column(sa.Column('username', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('purpose', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('last_used_at', shared.db.UtcDateTime(timezone=True), nullable=True))

    api_token = sa.table('api_token', sa.column('expires_at', shared.db.UtcDateTime()), sa.column('label', sa.String()),
                         sa.column('purpose', sa.String()), sa.column('last_used_at', shared.db.UtcDateTime()),
                         sa.column('created_at', shared.db.UtcDateTime()), sa.column('revoked_at', shared.db.UtcDateTime()))
    now = datetime.now(timezone.utc)
    # Unnamed tokens that never expired are the ones earlier `baove up --demo` printed to its log (admin's
    # among them): revoked, not given more time. Operators issue named tokens (docs/people.md).
    op.execute(api_token.update().where(api_token.c.label.is_(None), api_token.c.expires_at.is_(None), api_token.c.revoked_at.is_(None))
               .values(revoked_at=now, expires_at=now))
    op.execute(api_token.update().where(api_token.c.label.is_(None)).values(label='issued before people'))
    latest = now + timedelta(days=MAX_DAYS)
    op.execute(api_token.update().where(sa.or_(api_token.c.expires_at.is_(None), api_token.c.expires_at > latest))
               .values(expires_at=latest))
    op.execute(api_token.update().values(purpose='machine', last_used_at=api_token.c.created_at))

    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.alter_column('expires_at', existing_type=shared.db.UtcDateTime(timezone=True), nullable=False)
        batch_op.alter_column('purpose', existing_type=sa.String(length=16), nullable=False)
        batch_op.alter_column('last_used_at', existing_type=shared.db.UtcDateTime(timezone=True), nullable=False)
        batch_op.alter_column('label', existing_type=sa.String(length=200), comment="a machine token's name", existing_nullable=True)
        batch_op.create_index('ix_api_token_username', ['username'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_api_token_username_person'), 'person', ['username'], ['username'])

    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.add_column(sa.Column('username', sa.String(length=64), nullable=True, comment='the person; none for a machine token'))
        batch_op.add_column(sa.Column('token_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('detail', sa.String(length=300), nullable=True, comment='for people and token events: what changed, from where'))
        batch_op.alter_column('incident_id', existing_type=sa.String(length=36), nullable=True)
        batch_op.create_index('ix_audit_entry_username', ['username', 'id'], unique=False)


def downgrade() -> None:
    # The older audit had reads only: its incident_id is required.
    op.execute("DELETE FROM audit_entry WHERE incident_id IS NULL")
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_entry_username')
        batch_op.alter_column('incident_id', existing_type=sa.String(length=36), nullable=False)
        batch_op.drop_column('detail')
        batch_op.drop_column('token_id')
        batch_op.drop_column('username')

    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_api_token_username_person'), type_='foreignkey')
        batch_op.drop_index('ix_api_token_username')
        batch_op.alter_column('expires_at', existing_type=shared.db.UtcDateTime(timezone=True), nullable=True)
        batch_op.drop_column('last_used_at')
        batch_op.drop_column('purpose')
        batch_op.drop_column('username')

    with op.batch_alter_table('sign_in_attempt', schema=None) as batch_op:
        batch_op.drop_index('ix_sign_in_attempt_username')
    op.drop_table('sign_in_attempt')
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.drop_index('ix_person_subject')
    op.drop_table('person')
