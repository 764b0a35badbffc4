"""What a fresh virtual cluster holds: system namespaces, nodes, the default RBAC roles, service accounts."""

from __future__ import annotations

import copy
import functools
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from halyard.kube.facts import SIMULATED_ANNOTATION
from halyard.sim.cluster import VirtualCluster, WriteContext
from halyard.sim.resources import ResourceType
from halyard.sim.store import Obj

_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass(frozen=True)
class NodeShape:
    cpu: str = "4"
    memory: str = "16Gi"
    pods: str = "110"
    arch: str = "amd64"


@dataclass(frozen=True)
class Distribution:
    """How a distribution's nodes look: what the metadata agent reads to tell distribution and infrastructure."""

    os_image: str
    kernel: str
    runtime: str
    provider_id: str  # formatted with cluster, node, index and hexid (a per-node hex id)
    kubelet_suffix: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    node_name: str = ""  # managed distributions name nodes their own way and show no control plane
    instance_type: str = "sim.standard"


_UBUNTU = ("Ubuntu 22.04.4 LTS", "5.15.0-105-generic")
DISTRIBUTIONS: dict[str, Distribution] = {
    "generic": Distribution(*_UBUNTU, "containerd://1.7.15", "generic://{cluster}/{node}"),
    "kind": Distribution("Debian GNU/Linux 12 (bookworm)", "6.1.0-21-amd64", "containerd://1.7.18",
                         "kind://docker/{cluster}/{node}"),
    "k3s": Distribution(*_UBUNTU, "containerd://1.7.22-k3s1", "k3s://{node}", "+k3s1", instance_type="k3s"),
    "rke2": Distribution(*_UBUNTU, "containerd://1.7.22-k3s1", "rke2://{node}", "+rke2r1", instance_type="rke2"),
    "aks": Distribution("Ubuntu 22.04.5 LTS", "5.15.0-1073-azure", "containerd://1.7.20-1",
                        "azure:///subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/mc_{cluster}/"
                        "providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-vmss/virtualMachines/{index}",
                        labels=(("kubernetes.azure.com/role", "agent"), ("agentpool", "nodepool1"),
                                ("kubernetes.azure.com/cluster", "MC_{cluster}")),
                        node_name="aks-nodepool1-vmss{index:06d}", instance_type="Standard_D4s_v3"),
    "eks": Distribution("Amazon Linux 2023.6.20241031", "6.1.112-122.189.amzn2023.x86_64", "containerd://1.7.22",
                        "aws:///us-east-1a/i-{hexid}", "-eks-7f7a9a2",
                        labels=(("eks.amazonaws.com/nodegroup", "ng-1"),),
                        node_name="ip-10-0-0-{ip}.ec2.internal", instance_type="m5.xlarge"),
    "gke": Distribution("Container-Optimized OS from Google", "6.1.100+", "containerd://1.7.22",
                        "gce://sim-project/us-central1-a/{node}", "-gke.1100000",
                        labels=(("cloud.google.com/gke-nodepool", "default-pool"),),
                        node_name="gke-{cluster}-default-pool-{index}", instance_type="e2-standard-4"),
    "openshift": Distribution("Red Hat Enterprise Linux CoreOS 417.94.202410211619-0",
                              "5.14.0-427.40.1.el9_4.x86_64", "cri-o://1.30.6", "openshift://{cluster}/{node}",
                              labels=(("node.openshift.io/os_id", "rhcos"),)),
}  # fmt: skip


def distribution_profile(name: str) -> Distribution:
    """The profile of ``name``; an unknown distribution looks generic with its own ``providerID`` scheme."""
    return DISTRIBUTIONS.get(name) or Distribution(*_UBUNTU, "containerd://1.7.15", name + "://{cluster}/{node}")


def _cluster_role(name: str, rules: list[dict[str, Any]], labels: dict[str, str] | None = None) -> Obj:
    meta: dict[str, Any] = {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults", **(labels or {})}}
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": meta, "rules": rules}


def _binding(name: str, role: str, kind: str, subject: str) -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": subject}],
    }


_READ = ["get", "list", "watch"]
_WRITE = ["create", "delete", "deletecollection", "patch", "update"]
_WORKLOADS = [
    {"apiGroups": [""], "resources": ["pods", "pods/log", "services", "endpoints", "configmaps", "secrets",
                                      "serviceaccounts", "events", "persistentvolumeclaims"]},
    {"apiGroups": ["apps"], "resources": ["deployments", "deployments/scale", "replicasets", "replicasets/scale",
                                          "statefulsets", "statefulsets/scale", "daemonsets", "controllerrevisions"]},
    {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"]},
]  # fmt: skip
DEFAULT_CLUSTER_ROLES: tuple[Obj, ...] = (
    _cluster_role("cluster-admin", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                                    {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
    _cluster_role("admin", [*({**r, "verbs": _READ + _WRITE} for r in _WORKLOADS),
                            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"],
                             "verbs": _READ + _WRITE}]),
    _cluster_role("edit", [{**r, "verbs": _READ + _WRITE} for r in _WORKLOADS]),
    _cluster_role("view", [{**r, "resources": [x for x in r["resources"] if x != "secrets"], "verbs": _READ}
                           for r in _WORKLOADS]),
    _cluster_role("system:discovery", [{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz",
                                                            "/livez", "/readyz", "/openapi", "/openapi/*", "/version",
                                                            "/version/"], "verbs": ["get"]}]),
    _cluster_role("system:basic-user", [{"apiGroups": ["authorization.k8s.io"],
                                         "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                                         "verbs": ["create"]},
                                        {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"],
                                         "verbs": ["create"]}]),
    _binding("cluster-admin", "cluster-admin", "Group", "system:masters"),
    _binding("system:discovery", "system:discovery", "Group", "system:authenticated"),
    _binding("system:basic-user", "system:basic-user", "Group", "system:authenticated"),
)  # fmt: skip


# What kubeadm (and kind, k3s, rke2) put on a control-plane node, so that workloads without the toleration land on
# the workers, as on a real cluster.
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def node_object(
    name: str, index: int, version: str, distribution: str, shape: NodeShape, cluster: str, *, nodes: int
) -> Obj:
    """Node ``index`` of a cluster of ``nodes``: the first is the control plane (tainted ``NoSchedule`` when there
    are workers to run pods: a single-node cluster, like kind's, is left untainted), unless the distribution is a
    managed one whose control plane is not a node."""
    profile = distribution_profile(distribution)
    ip = f"10.0.{index // 250}.{index % 250 + 2}"
    if profile.node_name:
        name = profile.node_name.format(cluster=cluster, index=index, ip=index % 250 + 2)
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": shape.arch,
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": shape.arch,
        "node.kubernetes.io/instance-type": profile.instance_type,
        "topology.kubernetes.io/zone": f"sim-{index % 3 + 1}",
        **{k: v.format(cluster=cluster) for k, v in profile.labels},
    }
    control_plane = index == 0 and not profile.node_name
    if control_plane:
        labels["node-role.kubernetes.io/control-plane"] = ""
    capacity = {"cpu": shape.cpu, "memory": shape.memory, "pods": shape.pods, "ephemeral-storage": "100Gi"}
    kubelet = version + profile.kubelet_suffix
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": {SIMULATED_ANNOTATION: "true"}},
        "spec": {
            "providerID": profile.provider_id.format(
                cluster=cluster,
                node=name,
                index=index,
                hexid=hashlib.sha256(f"{cluster}/{name}".encode()).hexdigest()[:17],
            ),
            "podCIDR": f"10.244.{index}.0/24",
            **({"taints": [dict(CONTROL_PLANE_TAINT)]} if control_plane and nodes > 1 else {}),
        },
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "conditions": [
                {"type": t, "status": s, "reason": r, "message": m}
                for t, s, r, m in (
                    ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory"),
                    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
                )
            ],
            "nodeInfo": {
                "kubeletVersion": kubelet,
                "kubeProxyVersion": kubelet,
                "osImage": profile.os_image,
                "kernelVersion": profile.kernel,
                "containerRuntimeVersion": profile.runtime,
                "operatingSystem": "linux",
                "architecture": shape.arch,
                **_ids(cluster, name),
            },
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        },
    }


def _ids(cluster: str, name: str) -> dict[str, str]:
    """Stable machine identities (hashlib, not hash(): the same across restarts)."""
    digest = hashlib.sha256(f"{cluster}/{name}".encode()).hexdigest()
    return {
        "machineID": digest[:32],
        "systemUUID": f"{digest[32:40]}-{digest[40:44]}-{digest[44:48]}-{digest[48:52]}-{digest[52:64]}",
        "bootID": hashlib.sha256(f"boot/{cluster}/{name}".encode()).hexdigest()[:32],
    }


@functools.lru_cache(maxsize=8)
def _template(nodes: int, version: str, distribution: str, shape: NodeShape) -> tuple[tuple[str, Obj], ...]:
    """(storage key, object) of every seeded object, made once through the normal create path (so they are valid).

    Clusters get deep copies, which share the template's strings: a thousand clusters' keys and values are one set
    of string objects (a JSON round trip would double the memory per cluster)."""
    from halyard.core.clock import SystemClock

    c = VirtualCluster("template", SystemClock())
    reg = c.registry
    quiet = WriteContext(field_validation="Ignore")

    def rt(api_version: str, kind: str) -> ResourceType:
        found = reg.by_kind(api_version, kind)
        assert found is not None
        return found

    for ns in _NAMESPACES:
        c.create(rt("v1", "Namespace"), "", {"metadata": {"name": ns}}, quiet)
    for i in range(nodes):
        name = "control-plane" if i == 0 else f"node-{i}"
        c.create(
            rt("v1", "Node"), "", node_object(name, i, version, distribution, shape, "template", nodes=nodes), quiet
        )
    for obj in DEFAULT_CLUSTER_ROLES:
        c.create(rt(obj["apiVersion"], obj["kind"]), "", obj, quiet)
    for ns in _NAMESPACES:
        c.create(rt("v1", "ServiceAccount"), ns, {"metadata": {"name": "default"}}, quiet)
    kubernetes_svc = {
        "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "targetPort": 6443}]},
    }
    c.create(rt("v1", "Service"), "default", kubernetes_svc, quiet)
    events = sorted(
        (int(o["metadata"]["resourceVersion"]), key, o) for key, b in c.store.objects.items() for o in b.values()
    )
    return tuple((key, o) for _, key, o in events)


def seed_cluster(
    c: VirtualCluster, *, nodes: int, version: str, distribution: str, shape: NodeShape | None = None
) -> None:
    """Create what every new cluster has: a copy of a per-process template with fresh uids and timestamps
    (building each cluster through the create path made seeding the bulk of a 1,000-cluster start)."""
    now = c.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    for key, template in _template(nodes, version, distribution, shape or NodeShape()):
        obj = copy.deepcopy(template)
        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now
        if key == "/nodes":
            # Node identities name the cluster: rebuild them for this one (the template was made for "template").
            index = int(obj["spec"]["podCIDR"].split(".")[2])
            fresh = node_object(meta["name"], index, version, distribution, shape or NodeShape(), c.name, nodes=nodes)
            obj["metadata"]["name"] = fresh["metadata"]["name"]
            obj["metadata"]["labels"] = fresh["metadata"]["labels"]
            obj["spec"] = fresh["spec"]
            obj["status"]["nodeInfo"] = fresh["status"]["nodeInfo"]
            obj["status"]["addresses"] = fresh["status"]["addresses"]
        c.store.put(key, obj, "ADDED")
