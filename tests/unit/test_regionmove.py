"""The region move's comparison of the old LISTs with the new (pure): what differs is named, what differs by nature
(ids under the new cluster, times, identities, system data) is not."""

from __future__ import annotations

from typing import Any

from halyard.cli.regionmove import compare

OLD = "/subscriptions/s/resourceGroups/a/providers/Microsoft.Kubernetes/connectedClusters/c"
NEW = "/subscriptions/s/resourceGroups/b/providers/Microsoft.Kubernetes/connectedClusters/c"
EXT = "/providers/Microsoft.KubernetesConfiguration/extensions/"


def _ext(cluster: str, name: str, **properties: Any) -> dict[str, Any]:
    return {
        "id": cluster + EXT + name,
        "name": name,
        "type": "Microsoft.KubernetesConfiguration/extensions",
        "identity": {"type": "SystemAssigned", "principalId": cluster},
        "systemData": {"createdAt": cluster},
        "properties": {
            "provisioningState": "Succeeded",
            "statuses": [{"code": "InstallSucceeded", "time": cluster}],
            "sourceId": cluster.lower() + "/x",
            **properties,
        },
    }


def test_the_same_configuration_moved_compares_equal() -> None:
    assert (
        compare([_ext(OLD, "flux", currentVersion="1.0.0")], [_ext(NEW, "flux", currentVersion="1.0.0")], OLD, NEW)
        == []
    )


def test_what_changed_or_went_missing_is_named() -> None:
    before = [_ext(OLD, "flux", currentVersion="1.0.0"), _ext(OLD, "gone")]
    after = [_ext(NEW, "flux", currentVersion="1.1.0", installState="Failed"), _ext(NEW, "new")]
    assert compare(before, after, OLD, NEW) == [
        "extensions/gone: missing in the new location",
        "extensions/new: only in the new location",
        'extensions/flux: properties.currentVersion: "1.0.0" -> "1.1.0"',
        'extensions/flux: properties.installState: null -> "Failed"',
    ]


def test_when_config_agent_last_reported_is_a_moment_but_the_source_s_revision_is_compared() -> None:
    def flux(cluster: str, reported: str, commit: str) -> dict[str, Any]:
        return {"id": cluster + "/providers/Microsoft.KubernetesConfiguration/fluxConfigurations/apps", "name": "apps",
                "type": "Microsoft.KubernetesConfiguration/fluxConfigurations",
                "properties": {"complianceState": "Compliant", "statusUpdatedAt": reported,
                               "sourceSyncedCommitId": commit}}  # fmt: skip

    before = [flux(OLD, "2026-12-06T07:00:00Z", "main@sha1:aa")]
    assert compare(before, [flux(NEW, "2026-12-06T07:05:00Z", "main@sha1:aa")], OLD, NEW) == []
    assert compare(before, [flux(NEW, "2026-12-06T07:05:00Z", "main@sha1:bb")], OLD, NEW) == [
        'fluxConfigurations/apps: properties.sourceSyncedCommitId: "main@sha1:aa" -> "main@sha1:bb"'
    ]
