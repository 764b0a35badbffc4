"""A connected cluster's configuration, saved and recreated for a region move, its protected settings never leaving
the server.

Arc's users must have kept their original request bodies to recreate protected settings in the new region (a GET
never returns them). Here the control plane keeps them: ``snapshot`` saves every configuration resource of a cluster
(each EXTENSION-placement type of Microsoft.KubernetesConfiguration under connectedClusters, whichever are served:
extensions, Flux and source-control configurations) with its secret values sealed, keyed by the cluster's id so the
snapshot outlives the cluster's deletion; ``restore`` recreates the missing ones under another cluster through the
one resource pipeline (validation, RBAC per resource, operations, delivery), the secrets unsealed only in memory.

A type's sealed value is a mapping of property names to what its PUT accepts back (``{"configurationProtectedSettings":
{...}}`` for extensions): restore merges it into the properties. Both actions are authorised (the caller must be able
to snapshot the source and to write what it restores) and audited (log ``halyard.audit``, names only).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from halyard.controlplane.arm.access import AuthorizedCaller
from halyard.controlplane.arm.paths import ResourceId
from halyard.controlplane.arm.pipeline import Pipeline, merge_reports
from halyard.controlplane.arm.resourcetypes import Placement, ResourceType, ResourceTypes
from halyard.core.clock import Clock, isoformat
from halyard.core.errors import Conflict, InvalidRequest, NotFound
from halyard.core.sealing import Sealer
from halyard.store import Database
from halyard.store.models import ConfigurationSnapshot, Resource, ResourceReport

log = logging.getLogger("halyard.audit")
NAMESPACE = "Microsoft.KubernetesConfiguration"
CLUSTERS_KEY = "microsoft.kubernetes/connectedclusters"
CLUSTERS = "Microsoft.Kubernetes/connectedClusters"
SNAPSHOT_ACTION = f"{CLUSTERS}/snapshotConfiguration/action"
RESTORE_ACTION = f"{CLUSTERS}/restoreConfiguration/action"


def configuration_types(types: ResourceTypes) -> list[ResourceType]:
    """What a move carries: every configuration type served under connected clusters, in declaration order (an
    extension before the Flux configurations that use it)."""
    return [
        t
        for t in types.all()
        if t.placement is Placement.EXTENSION
        and t.namespace.lower() == NAMESPACE.lower()
        and t.parent is not None
        and t.parent.key == CLUSTERS_KEY
    ]


@dataclass
class ConfigurationSnapshots:
    db: Database
    types: ResourceTypes
    pipeline: Pipeline
    sealer: Sealer
    clock: Clock

    async def snapshot(self, caller: AuthorizedCaller, cluster: ResourceId) -> dict[str, Any]:
        """Save the cluster's configuration resources (replacing an earlier snapshot of it); what GET shows of
        them. The caller must be able to snapshot the cluster and to write and delete each resource."""
        caller.require(SNAPSHOT_ACTION, str(cluster))
        rtypes = configuration_types(self.types)
        clusters = self.types.get(CLUSTERS)
        assert clusters is not None
        await self.pipeline.get(caller, clusters, cluster, clusters.api_versions[0])  # 404 names what is missing
        saved: list[dict[str, Any]] = []
        secrets: dict[str, Any] = {}
        async with self.db.transaction() as session:
            await self.db.lock(session, cluster.key)
            for rtype in rtypes:
                rows = (
                    await session.scalars(
                        select(Resource)
                        .where(Resource.parent_key == cluster.key, Resource.type_key == rtype.key)
                        .order_by(Resource.id_key)
                    )
                ).all()
                for row in rows:
                    if row.provisioning_state == "Deleting":
                        continue
                    caller.require(rtype.action("write"), row.id)
                    caller.require(rtype.action("delete"), row.id)
                    reports = (
                        await session.scalars(select(ResourceReport).where(ResourceReport.id_key == row.id_key))
                    ).all()
                    shown = self.pipeline.render(rtype, row, merge_reports(reports), rtype.api_versions[0])
                    body: dict[str, Any] = {"properties": row.properties, "tags": row.tags or {}}
                    if row.identity and row.identity.get("type"):
                        body["identity"] = {"type": row.identity["type"]}
                    saved.append({"type": rtype.full_type, "name": row.name, "body": body, "shown": shown})
                    if row.sealed is not None:
                        secrets[f"{rtype.key}/{row.name}"] = self.sealer.unseal_json(row.sealed)
            snapshot = await session.get(ConfigurationSnapshot, cluster.key)
            if snapshot is None:
                snapshot = ConfigurationSnapshot(source_key=cluster.key, source_id=str(cluster))
                session.add(snapshot)
            snapshot.subscription_id = (cluster.subscription_id or "").lower()
            snapshot.resources = saved
            snapshot.sealed = self.sealer.seal_json(secrets) if secrets else None
            snapshot.created_at = self.clock.now()
            snapshot.created_by = caller.caller.app_id
        log.info(
            "configuration snapshot",
            extra={"caller": caller.caller.app_id, "cluster": str(cluster), "resources": len(saved)},
        )
        return _answer(snapshot, [], rtypes)

    async def restore(
        self, caller: AuthorizedCaller, target: ResourceId, source_id: str, *, discard: bool = False
    ) -> dict[str, Any]:
        """Recreate under ``target`` the snapshot's resources it lacks (each through the pipeline: its operation
        runs as any PUT's), and say which were created and which were there. ``discard``: once every one is
        there, the snapshot is deleted instead (the move's last step)."""
        caller.require(RESTORE_ACTION, str(target))
        source = _parsed(source_id)
        caller.require(SNAPSHOT_ACTION, str(source))  # only who could have taken it may use it
        clusters = self.types.get(CLUSTERS)
        assert clusters is not None
        await self.pipeline.get(caller, clusters, target, clusters.api_versions[0])
        async with self.db.session() as session:
            snapshot = await session.get(ConfigurationSnapshot, source.key)
        if snapshot is None:
            raise NotFound(
                f"No configuration snapshot of '{source_id}' is kept: take one with snapshotConfiguration on that "
                "cluster before deleting it.",
                code="SnapshotNotFound",
            )
        secrets: Mapping[str, Any] = self.sealer.unseal_json(snapshot.sealed) if snapshot.sealed else {}
        outcome: list[dict[str, Any]] = []
        for item in snapshot.resources:
            rtype = self.types.get(item["type"])
            if rtype is None:
                raise Conflict(f"The snapshot holds a {item['type']} this server does not serve.", code="TypeNotServed")
            rid = target.extension(rtype.namespace, rtype.type_name, item["name"])
            async with self.db.session() as session:
                present = await session.get(Resource, rid.key)
            if present is not None:
                outcome.append({"id": str(rid), "status": "Present"})
                continue
            if discard:
                raise Conflict(
                    f"{rid} is not restored yet; restore before discarding the snapshot.", code="NotRestored"
                )
            body = dict(item["body"])
            body["properties"] = {**body["properties"], **secrets.get(f"{rtype.key}/{item['name']}", {})}
            model = rtype.put_model.model_validate(body)
            reply = await self.pipeline.put(
                caller, rtype, rid, rtype.api_versions[0], model, if_match=None, if_none_match="*"
            )
            outcome.append({"id": str(rid), "status": "Created", "asyncOperation": reply.headers.get(
                "Azure-AsyncOperation")})  # fmt: skip
        if discard:
            async with self.db.transaction() as session:
                row = await session.get(ConfigurationSnapshot, source.key)
                if row is not None:
                    await session.delete(row)
        log.info(
            "configuration restore",
            extra={
                "caller": caller.caller.app_id,
                "cluster": str(target),
                "source": str(source),
                "restored": sum(1 for o in outcome if o["status"] == "Created"),
                "discarded": discard,
            },
        )
        return _answer(snapshot, outcome, configuration_types(self.types))


def _parsed(source_id: str) -> ResourceId:
    source = ResourceId.parse(source_id)  # an InvalidRequest naming it when it is no resource id
    if source.full_type.lower() != CLUSTERS_KEY:
        raise InvalidRequest("sourceClusterId must be a connected cluster's resource id.", target="sourceClusterId")
    return source


def _answer(
    snapshot: ConfigurationSnapshot, outcome: list[dict[str, Any]], rtypes: list[ResourceType]
) -> dict[str, Any]:
    """The snapshot as GET showed its resources (no secret), and the types a move carries with the api-version to
    list them in (so a client compares every type without knowing them)."""
    body: dict[str, Any] = {
        "sourceClusterId": snapshot.source_id,
        "createdAt": isoformat(snapshot.created_at),
        "resources": [item["shown"] for item in snapshot.resources],
        "types": [{"type": t.full_type, "apiVersion": t.api_versions[0]} for t in rtypes],
    }
    if outcome:
        body["restored"] = outcome
    return body
