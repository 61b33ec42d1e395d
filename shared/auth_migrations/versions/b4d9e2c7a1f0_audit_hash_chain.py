"""the audit chained by hashes: each entry's SHA-256 and its link to the entry before

Revision ID: b4d9e2c7a1f0
Revises: a7c3e1d2b9f4
Create Date: 2026-11-29 22:40:00.000000
"""
import hashlib
import json
from datetime import UTC

from alembic import op
import sqlalchemy as sa
import shared.db


revision = 'b4d9e2c7a1f0'
down_revision = 'a7c3e1d2b9f4'
branch_labels = None
depends_on = None

# shared.audit.entry_digest as it was when this ran (copied: a migration never changes).
HASHED = ("at", "principal", "action", "incident_id", "endpoint", "service", "username", "token_id", "detail")


def digest(prev_hash, row) -> str:
    values = [prev_hash] + [
        getattr(row, name).astimezone(UTC).isoformat(timespec="microseconds") if name == "at" else getattr(row, name)
        for name in HASHED
    ]
    return hashlib.sha256(json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True,
                                      comment='entry_hash of the entry before (64 zeros for the first)'))
        batch_op.add_column(sa.Column('entry_hash', sa.String(length=64), nullable=True,
                                      comment="SHA-256 of prev_hash and this entry's content (shared.audit.entry_digest)"))

    audit = sa.table('audit_entry', sa.column('id', sa.Integer()), sa.column('at', shared.db.UtcDateTime()),
                     *(sa.column(name, sa.String()) for name in HASHED[1:]),
                     sa.column('prev_hash', sa.String()), sa.column('entry_hash', sa.String()))
    connection = op.get_bind()
    prev, after = "0" * 64, 0
    while True:  # the entries there already, chained oldest first
        rows = connection.execute(sa.select(audit).where(audit.c.id > after).order_by(audit.c.id).limit(2000)).all()
        for row in rows:
            entry = digest(prev, row)
            connection.execute(audit.update().where(audit.c.id == row.id).values(prev_hash=prev, entry_hash=entry))
            prev = entry
        if not rows:
            break
        after = rows[-1].id

    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('entry_hash', existing_type=sa.String(length=64), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.drop_column('entry_hash')
        batch_op.drop_column('prev_hash')
