"""The one denormalised fact, held to its definition: `sync_activations.completed_steps` must
equal the bits of the activation's complete step rows after every write."""

from __future__ import annotations

from sqlalchemy import select

from healthgraph.database import Database
from store import derived
from store.models import SyncActivationRow


async def completed_steps(db: Database) -> dict[int, int]:
    """The stored bitmask of every activation, after asserting it equals the derived one."""
    async with db.sessions() as session:
        rows = (
            await session.execute(
                select(
                    SyncActivationRow.id,
                    SyncActivationRow.completed_steps,
                    derived.completed_steps_from_rows(),
                ).order_by(SyncActivationRow.id)
            )
        ).all()
    stored = {activation_id: mask for activation_id, mask, _ in rows}
    assert stored == {activation_id: int(mask) for activation_id, _, mask in rows}
    return stored
