"""What the agents record of their own view, for ``connectedk8s troubleshoot``: each name they dial resolved from
where they run, TCP and TLS to it, the certificate's expiry, and their own state.

resource-sync's process writes it into ConfigMap ``halyard-system/halyard-diagnostics`` (``agent/diagnostics.py``);
the CLI reads it with the user's kubeconfig. Both sides import this model, so the contract lives here. Every field is
bounded: the record stays a few kilobytes whatever the agents saw.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from halyard.api.text import Text

CONFIGMAP = "halyard-diagnostics"
KEY = "diagnostics"  # the ConfigMap's key holding the record as JSON
MAX_TEXT = 500  # an error's text as recorded (longer ones are cut)
MAX_NAMES = 8
MAX_ERRORS = 16


def cut(text: str) -> str:
    """``text`` within the record's bounds."""
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")  # a newer agent's record is read by an older CLI


class NameView(_Lenient):
    """One host the agents dial (the services of the map that name it), as seen from where they run."""

    services: list[str] = Field(max_length=8, description="The map's services on this host:port (dp, his, ...).")
    host: Text = Field(max_length=253)
    port: int = Field(ge=1, le=65535)
    via: Text | None = Field(default=None, max_length=MAX_TEXT, description="The proxy the agents go through.")
    addresses: list[str] = Field(default_factory=list, max_length=16, description="What the name resolved to.")
    resolveError: Text | None = Field(default=None, max_length=MAX_TEXT)
    tcp: bool | None = Field(default=None, description="None: not tried (the name did not resolve).")
    tcpError: Text | None = Field(default=None, max_length=MAX_TEXT)
    tls: bool | None = None
    tlsError: Text | None = Field(default=None, max_length=MAX_TEXT)
    certificateNotAfter: dt.datetime | None = None


class AgentIssue(_Lenient):
    component: Text = Field(max_length=64)
    message: Text = Field(max_length=MAX_TEXT)
    severity: Text = Field(default="Error", max_length=16)
    time: dt.datetime | None = None


class AgentsView(_Lenient):
    """The agents' own state, as controller-manager keeps it, and resource-sync's heartbeat."""

    state: Text | None = Field(default=None, max_length=32, description="agentState: Succeeded or Failed.")
    errors: list[AgentIssue] = Field(default_factory=list, max_length=MAX_ERRORS)
    lastBeat: dt.datetime | None = Field(default=None, description="The last heartbeat the control plane took.")
    beatError: Text | None = Field(default=None, max_length=MAX_TEXT, description="Why the latest beat failed.")
    beatErrorAt: dt.datetime | None = None


class Diagnostics(_Lenient):
    version: Literal[1] = 1
    resourceId: Text = Field(max_length=1024)
    observedAt: dt.datetime
    mode: Literal["local", "in-cluster"]
    host: Text = Field(max_length=253, description="The machine (local mode) or pod the agents run in.")
    agentVersion: Text = Field(max_length=64)
    endpointsVersion: Text = Field(max_length=64, description="The version of the endpoint map the agents follow.")
    agents: AgentsView
    names: list[NameView] = Field(default_factory=list, max_length=MAX_NAMES)
