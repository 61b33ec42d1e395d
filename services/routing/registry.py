"""The unit registry: which units exist and may act, listed for a commune, loaded from the reference files."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal, parse_unit_id
from shared.cursor import decode_cursor, encode_cursor
from shared.db import dialect_insert
from shared.errors import Forbidden
from shared.reference import UnitRecord
from shared.runtime import Runtime

from .models import Unit


def may_list_units(principal: Principal, commune_code: str) -> bool:
    return principal.is_admin or principal.is_cp_officer_of(commune_code)



async def list_units(
    session: AsyncSession, commune_code: str, principal: Principal, *, limit: int = 50, cursor: str | None = None
) -> tuple[list[Unit], str | None]:
    """The commune's units by id (keyset pages): for admins and the commune's cp_officer."""
    if not may_list_units(principal, commune_code):
        raise Forbidden(f"only admins and {commune_code}.cp_officer may list the units of commune {commune_code}")
    stmt = select(Unit).where(Unit.commune_code == commune_code)
    if cursor:
        stmt = stmt.where(Unit.id > str(decode_cursor(cursor, id=str)["id"]))
    units = list((await session.execute(stmt.order_by(Unit.id).limit(limit + 1))).scalars())
    if len(units) > limit:
        units = units[:limit]
        return units, encode_cursor({"id": units[-1].id})
    return units, None



def unit_row(record: UnitRecord) -> dict:
    """A registry row; ValueError when the id does not agree with the commune or type given."""
    commune, unit_type, local_id = parse_unit_id(record.id)
    if commune != record.commune_code or unit_type.value != record.unit_type:
        raise ValueError(f"unit {record.id!r} does not match commune {record.commune_code} and type {record.unit_type}")
    return {"id": record.id, "commune_code": commune, "unit_type": unit_type.value, "local_id": local_id, "name": record.name, "active": True}



async def load_units_into(runtime: Runtime, units: list[UnitRecord]) -> int:
    """Insert or update units in the registry in one transaction; returns how many."""
    rows = [unit_row(u) for u in units]
    if rows:
        async with runtime.unit_of_work() as uow:
            stmt = dialect_insert(uow.session)(Unit).values(rows)
            stmt = stmt.on_conflict_do_update(
                index_elements=[Unit.id],
                set_={c: stmt.excluded[c] for c in ("commune_code", "unit_type", "local_id", "name", "active")},
            )
            await uow.session.execute(stmt)
    # The caller runs this under its own asyncio.run: leave no connection bound to that loop.
    await runtime.engine.dispose()
    return len(rows)
