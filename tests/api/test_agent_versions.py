"""arcAgentProfile.desiredAgentVersion must be an agent version the control plane offers."""

from __future__ import annotations

import pytest

import halyard
from tests.api.helpers import CC_API, cluster_body, cluster_path, make_group, unique
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e


def test_only_an_offered_agent_version_may_be_pinned(server: ServerProcess) -> None:
    path = cluster_path(server, make_group(server), unique("pin"))
    with server.client() as c:
        offered = {"agentAutoUpgrade": "Disabled", "desiredAgentVersion": halyard.__version__}
        r = c.put(path, params=CC_API, json=cluster_body(arcAgentProfile=offered))
        assert r.status_code == 201, r.text
        assert r.json()["properties"]["arcAgentProfile"]["desiredAgentVersion"] == halyard.__version__

        unoffered = {"agentAutoUpgrade": "Disabled", "desiredAgentVersion": "9.9.9"}
        r = c.put(path, params=CC_API, json=cluster_body(arcAgentProfile=unoffered))
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["code"] == "InvalidAgentVersion"
        assert "9.9.9" in error["message"] and halyard.__version__ in error["message"]
        stored = c.get(path, params=CC_API).json()["properties"]["arcAgentProfile"]
        assert stored["desiredAgentVersion"] == halyard.__version__ and stored["agentAutoUpgrade"] == "Disabled"

        r = c.put(path, params=CC_API, json=cluster_body(arcAgentProfile={"desiredAgentVersion": ""}))
        assert r.status_code == 200, r.text  # empty: no pin

        # Stored as offered, so the image tag helm deploys and the one controller-manager rolls to are the same.
        respelled = {"agentAutoUpgrade": "Disabled", "desiredAgentVersion": halyard.__version__ + ".0"}
        r = c.put(path, params=CC_API, json=cluster_body(arcAgentProfile=respelled))
        assert r.status_code == 200, r.text
        assert r.json()["properties"]["arcAgentProfile"]["desiredAgentVersion"] == halyard.__version__
