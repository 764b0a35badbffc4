"""The access check guard asks the control plane: may this principal do this in my cluster (azure-rbac)?

The request carries the Kubernetes attributes of a SubjectAccessReview as kube-apiserver sent them (the control plane
maps them to an Arc data action, so the mapping lives in one place); the reply is the decision. Every string and list
is bounded: the caller is a cluster, and a cluster is not trusted to be well-behaved.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from halyard.api.text import Text

DP_CHECKACCESS_PATH = "/v1/checkaccess"
MAX_GROUPS = 256

# A Kubernetes name part (an API group is a DNS subdomain, 253; a path may be longer, 1024 like a URL path).
Short = Annotated[Text, Field(max_length=253)]
Path = Annotated[Text, Field(max_length=1024)]


class ResourceAttributes(BaseModel):
    """``spec.resourceAttributes`` of a SubjectAccessReview (authorization.k8s.io/v1)."""

    model_config = ConfigDict(extra="ignore")
    namespace: Short = ""
    verb: Short = ""
    group: Short = ""
    version: Short = ""
    resource: Short = ""
    subresource: Short = ""
    name: Short = ""


class NonResourceAttributes(BaseModel):
    """``spec.nonResourceAttributes`` of a SubjectAccessReview."""

    model_config = ConfigDict(extra="ignore")
    path: Path = ""
    verb: Short = ""


class CheckAccessRequest(BaseModel):
    """Whether ``user`` (a principal's object id), with ``groups`` (group object ids), may do what the attributes
    say in the calling cluster. Exactly one of the two attribute sets is given."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    user: Annotated[Text, Field(min_length=1, max_length=64)]
    groups: Annotated[list[Annotated[Text, Field(max_length=64)]], Field(max_length=MAX_GROUPS)] = []
    resource_attributes: ResourceAttributes | None = Field(default=None, alias="resourceAttributes")
    non_resource_attributes: NonResourceAttributes | None = Field(default=None, alias="nonResourceAttributes")

    @model_validator(mode="after")
    def _one_kind(self) -> CheckAccessRequest:
        if (self.resource_attributes is None) == (self.non_resource_attributes is None):
            raise ValueError("give exactly one of resourceAttributes and nonResourceAttributes")
        return self


class CheckAccessReply(BaseModel):
    """The decision. ``denied`` is set with every refusal, as Arc's guard does, so kube-apiserver stops there."""

    model_config = ConfigDict(populate_by_name=True)
    allowed: bool
    denied: bool
    reason: str
    data_action: str = Field(default="", alias="dataAction")
    scope: str = ""


def is_guid(value: str) -> bool:
    """A principal or group object id as Entra writes them (36 characters, any case); guard and the access check
    both decide only about these."""
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36
