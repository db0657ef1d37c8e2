"""Apply, sync by sync: the sync, its required connectors, and its activations' steps."""

from __future__ import annotations

from collections.abc import Mapping

from healthgraph.catalog.applier import Applier
from healthgraph.catalog.entries import ActivationSpec, SyncSpec
from store import commands
from store.catalog import StoredActivation, StoredSync


async def apply_sync(
    applier: Applier, path: str, sync: SyncSpec, existing: Mapping[str, StoredSync], prune: bool
) -> None:
    label = f"sync {sync.name!r}"
    required = [applier.connector_ids.get(slug) for slug in sync.requires]
    if None in required:
        return  # a required connector was refused, and that problem is reported already
    required_ids = [connector_id for connector_id in required if connector_id is not None]
    current = existing.get(sync.name)
    if current is None:
        created = await applier.run(
            path,
            commands.create_sync(
                applier.session, name=sync.name, required_connector_ids=required_ids
            ),
        )
        if created is None:
            return
        applier.report.create(label)
        sync_id = created.id
    else:
        sync_id = current.id
        if tuple(sync.requires) != current.requires and await applier.succeeds(
            path,
            commands.update_sync(applier.session, current.id, required_connector_ids=required_ids),
        ):
            applier.report.update(label, ["requires"])
    activations = {a.consumer_external_id: a for a in current.activations} if current else {}
    for index, activation in enumerate(sync.activations):
        await _activation(
            applier, f"{path}.activations[{index}]", sync.name, sync_id, activation, activations
        )
    if prune:
        listed = {a.consumer for a in sync.activations}
        for external_id, stale in activations.items():
            if external_id not in listed and await applier.succeeds(
                path, commands.delete_sync_activation(applier.session, stale.id)
            ):
                applier.report.delete(f"activation of {sync.name!r} for {external_id!r}")


async def _activation(
    applier: Applier,
    path: str,
    sync_name: str,
    sync_id: int,
    activation: ActivationSpec,
    existing: Mapping[str, StoredActivation],
) -> None:
    label = f"activation of {sync_name!r} for {activation.consumer!r}"
    consumer_id = applier.consumer_ids.get(activation.consumer)
    if consumer_id is None:
        return  # the consumer was refused, and that problem is reported already
    current = existing.get(activation.consumer)
    if current is None:
        created = await applier.run(
            path,
            commands.create_sync_activation(
                applier.session, sync_id=sync_id, consumer_id=consumer_id
            ),
        )
        if created is None:
            return
        applier.report.create(label)
        activation_id, stored_steps = created.id, {s.step: s.complete for s in created.steps}
    else:
        activation_id, stored_steps = current.id, dict(current.steps)
    changed = {
        step: (complete, None)
        for step, complete in activation.steps
        if stored_steps.get(step) != complete
    }
    if (
        changed
        and await applier.succeeds(
            path,
            commands.update_sync_activation(applier.session, activation_id, steps=changed),
        )
        and current is not None
    ):
        applier.report.update(label, [step.value.lower() for step in changed])
