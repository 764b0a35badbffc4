"""The access check behind azure-rbac: may this principal do this Kubernetes request in the calling cluster?

A connected cluster's guard (its authorization webhook) asks here with its agent token, so the cluster is the one
the token names and it can only ask about itself. The Kubernetes attributes are mapped to an Arc data action
(``arm.dataactions``), then decided from the role assignments of the principal and its groups with the pure rules of
``arm.rbac``: data actions only from ``dataActions`` minus ``notDataActions``, assignments inherited from the
subscription down to ``…/connectedClusters/NAME/namespaces/NS``. A principal that does not exist (deleted since,
or never) or belongs to another tenant than the cluster's subscription is denied.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from halyard.api.checkaccess import DP_CHECKACCESS_PATH, CheckAccessReply, CheckAccessRequest, is_guid
from halyard.controlplane.agentfacing.callers import AgentCaller
from halyard.controlplane.arm import dataactions, rbac
from halyard.controlplane.arm.access import Access
from halyard.controlplane.directory import Directory
from halyard.controlplane.plane import ControlPlane, plane
from halyard.core.errors import InvalidRequest

router = APIRouter()

ALLOWED = "Access allowed by Azure RBAC: role '{role}' assigned at '{scope}' to {user} or one of its groups."
NOT_ALLOWED = "User does not have access to the resource in Azure. Update role assignment to allow access."
NO_PRINCIPAL = "The principal does not exist in the directory of the cluster's tenant."


class AccessChecks:
    """Decides access checks from the store's principals and role assignments (no cache: guard caches decisions)."""

    def __init__(self, access: Access, directory: Directory) -> None:
        self._access = access
        self._directory = directory

    async def check(self, cluster_id: str, request: CheckAccessRequest) -> CheckAccessReply:
        """The decision for ``request`` in the cluster ``cluster_id``; InvalidRequest if it names no data action."""
        try:
            if request.resource_attributes is not None:
                a = request.resource_attributes
                check = dataactions.resource_check(
                    cluster_id,
                    namespace=a.namespace,
                    verb=a.verb,
                    group=a.group,
                    resource=a.resource,
                    subresource=a.subresource,
                )
            else:
                assert request.non_resource_attributes is not None  # the model requires one of the two
                n = request.non_resource_attributes
                check = dataactions.non_resource_check(cluster_id, path=n.path, verb=n.verb)
        except dataactions.Unmappable as exc:
            raise InvalidRequest(str(exc), code="UnsupportedAccessCheck") from None
        denied = CheckAccessReply(
            allowed=False, denied=True, reason=NOT_ALLOWED, dataAction=check.data_action, scope=check.scope
        )
        if not is_guid(request.user):
            return denied.model_copy(update={"reason": NO_PRINCIPAL})
        # Group claims that are not object ids are dropped, as guard does; they could never hold an assignment.
        groups = [g.lower() for g in request.groups if is_guid(g)]
        principal, assignments = await self._access.principal_assignments(request.user.lower(), groups)
        tenant = (await self._directory.subscription(_subscription_of(cluster_id))).tenant_id
        if principal is None or principal.tenant_id != tenant:
            return denied.model_copy(update={"reason": NO_PRINCIPAL})
        grant = rbac.data_action_grant(assignments, check.data_action, check.scope)
        if grant is None:
            return denied
        reason = ALLOWED.format(scope=grant.scope, role=grant.role.name, user=request.user)
        return CheckAccessReply(
            allowed=True, denied=False, reason=reason, dataAction=check.data_action, scope=check.scope
        )


def _subscription_of(cluster_id: str) -> str:
    return cluster_id.strip("/").split("/")[1]


@router.post(DP_CHECKACCESS_PATH, operation_id="Dp_CheckAccess", response_model_by_alias=True)
async def check_access(
    body: CheckAccessRequest, agent: AgentCaller, cp: Annotated[ControlPlane, Depends(plane)]
) -> CheckAccessReply:
    """Whether ``body.user`` may do the request in the calling cluster (the one the agent token names)."""
    return await AccessChecks(cp.access, cp.directory).check(agent.cluster_id, body)
