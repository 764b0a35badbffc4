"""One virtual cluster: its store, its resource types, and the API server's object semantics.

Create, get, list, update, patch and delete with the metadata rules, optimistic concurrency, the status
subresource, finalizers, dry-run and field ownership of a real API server. No HTTP here (see ``api.py``), no
controllers (see ``controllers.py``); time comes from an injected clock.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import ipaddress
import json
import re
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import yaml

from halyard.core.clock import Clock
from halyard.sim import crdschema, fieldmanager, patching, validation
from halyard.sim.errors import ApiError, already_exists, conflict, invalid, not_found, success_status
from halyard.sim.rbac import RbacObjects, UserInfo
from halyard.sim.resources import Registry, ResourceType, crd_types
from halyard.sim.schemas import unknown_fields
from halyard.sim.selectors import FieldRequirement, Requirement, fields_match, labels_match
from halyard.sim.store import Obj, ObjectStore

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet of generateName suffixes (no vowels, no 0/1/3)
# Kinds whose name must be a DNS label (63 chars, no dots), as on a real server.
_LABEL_NAMED = frozenset({"Namespace", "Service"})
# Kinds whose metadata.generation tracks spec changes.
_GENERATION_KINDS = frozenset(
    {
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
        "CustomResourceDefinition",
        "Pod",
    }
)
# Kinds whose DELETE answers with the object rather than a Status (the real registries' ReturnDeletedObject).
_RETURNS_DELETED = frozenset({"Namespace", "Pod", "Service", "CustomResourceDefinition"})
FOREGROUND = "foregroundDeletion"
ADMIN = UserInfo("kubernetes-admin", ("system:masters", "system:authenticated"))


def rfc3339(clock: Clock) -> str:
    return clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class WriteContext:
    """What a write request says about itself besides its body."""

    user: UserInfo = ADMIN
    dry_run: bool = False
    field_manager: str = ""
    field_validation: str = "Warn"  # Strict, Warn or Ignore
    warnings: list[str] = field(default_factory=list, compare=False, hash=False)


SYSTEM = WriteContext(field_manager="halyard-sim", field_validation="Ignore")


def _spec_of(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def decode_body(body: bytes, content_type: str) -> Any:
    if not body.strip():
        raise ApiError(400, "the request body is empty")
    try:
        if "yaml" in content_type:
            return yaml.safe_load(body)
        return json.loads(body)
    except (ValueError, yaml.YAMLError) as e:
        raise ApiError(400, f"the body of the request was in an unknown format or could not be decoded: {e}") from e


class VirtualCluster:
    """The objects of one virtual cluster and the API server rules over them."""

    def __init__(self, name: str, clock: Clock, *, watch_history: int = 200, seed: int | None = None) -> None:
        self.name = name
        self.clock = clock
        self.registry = Registry()
        self.store = ObjectStore(history=watch_history)
        self.admin_token = secrets.token_urlsafe(24)
        # Bearer tokens valid in this cluster: the admin's, and those issued through serviceaccounts/token.
        self.tokens: dict[str, UserInfo] = {self.admin_token: ADMIN}
        self.token_expiry: dict[str, dt.datetime] = {}  # issued tokens expire; the admin's does not
        self._next_ip = 10
        self._rand = secrets.SystemRandom() if seed is None else __import__("random").Random(seed)
        self.orphan_uids: set[str] = set()  # deleted with propagationPolicy=Orphan: the GC must leave dependents

    # ---- reads
    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        obj = self.store.get(rt.key, namespace if rt.namespaced else "", name)
        if obj is None:
            raise not_found(rt.group, rt.plural, name)
        return obj

    def list(
        self,
        rt: ResourceType,
        namespace: str | None,
        labels: list[Requirement],
        fields: list[FieldRequirement],
        *,
        limit: int = 0,
        continue_token: str = "",
    ) -> tuple[list[Obj], str, str, int | None]:
        """(items, resourceVersion, continue, remainingItemCount). Paging is by key, over the current state."""
        items = [
            o
            for o in self.store.list(rt.key, namespace if rt.namespaced else None)
            if labels_match(labels, o) and fields_match(fields, o)
        ]
        rv = str(self.store.rv)
        if continue_token:
            try:
                start = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
                after = (start["ns"], start["name"])
            except (ValueError, KeyError, TypeError) as e:
                raise ApiError(400, f"continue key is not valid: {e}") from e
            items = [o for o in items if _key(o) > after]
        if limit and len(items) > limit:
            last = items[limit - 1]
            ns, name = _key(last)
            token = base64.urlsafe_b64encode(json.dumps({"ns": ns, "name": name}).encode()).decode()
            return items[:limit], rv, token, len(items) - limit
        return items, rv, "", None

    def rbac(self) -> RbacObjects:
        s = self.store
        return RbacObjects(
            cluster_roles=lambda n: s.get("rbac.authorization.k8s.io/clusterroles", "", n),
            roles=lambda ns, n: s.get("rbac.authorization.k8s.io/roles", ns, n),
            cluster_role_bindings=lambda: s.list("rbac.authorization.k8s.io/clusterrolebindings"),
            role_bindings=lambda ns: s.list("rbac.authorization.k8s.io/rolebindings", ns),
        )

    # ---- writes
    def create(self, rt: ResourceType, namespace: str, body: Any, ctx: WriteContext = SYSTEM) -> Obj:
        obj = self._check_body(rt, body)
        meta = obj.setdefault("metadata", {})
        if rt.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise ApiError(
                    400,
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            namespace = namespace or meta.get("namespace") or "default"
            meta["namespace"] = namespace
            self._check_namespace_open(namespace)
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(self._rand.choice(_NAME_CHARS) for _ in range(5))
        self._validate_name(rt, meta.get("name"))
        self._validate_fields(rt, obj, ctx)
        obj = self._check_custom(rt, obj, ctx)
        meta = obj["metadata"]
        if self.store.get(rt.key, namespace if rt.namespaced else "", meta["name"]) is not None:
            raise already_exists(rt.group, rt.plural, meta["name"])
        for k in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(k, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = rfc3339(self.clock)
        if rt.kind in _GENERATION_KINDS or rt.crd is not None:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        self._default(rt, obj)
        self._validate_spec(rt, obj)
        if "status" in rt.subresources and rt.crd is not None:
            obj.pop("status", None)
        if ctx.field_manager and "managedFields" not in meta:
            fieldmanager.record_update(
                None, obj, ctx.field_manager, api_version=rt.group_version, now=rfc3339(self.clock)
            )
        if ctx.dry_run:
            return obj
        stored = self.store.put(rt.key, obj, "ADDED")
        self._after_write(rt, stored)
        return stored

    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        ctx: WriteContext = SYSTEM,
        *,
        subresource: str = "",
        managed_already: bool = False,
    ) -> Obj:
        existing = self.get(rt, namespace, name)
        obj = self._check_body(rt, body)
        meta = obj.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != name:
            raise ApiError(400, f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        rv = meta.get("resourceVersion")
        if rv and rv != existing["metadata"]["resourceVersion"]:
            raise conflict(
                rt.group,
                rt.plural,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        if subresource == "status":
            new = copy.deepcopy(existing)
            new["status"] = obj.get("status")
            if new["status"] is None:
                new.pop("status")
        else:
            self._validate_fields(rt, obj, ctx)
            new = self._check_custom(rt, obj, ctx)
            meta = new["metadata"]
            if "status" in rt.subresources:
                if "status" in existing:
                    new["status"] = copy.deepcopy(existing["status"])
                else:
                    new.pop("status", None)
            old_meta = existing["metadata"]
            for k in (
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "namespace",
            ):
                if k in old_meta:
                    meta[k] = old_meta[k]
                else:
                    meta.pop(k, None)
            meta["name"] = name
            if "generation" in old_meta:
                meta["generation"] = old_meta["generation"]
                if _spec_of(new) != _spec_of(existing):
                    meta["generation"] = old_meta["generation"] + 1
            self._keep_on_update(rt, existing, new)
            self._validate_spec(rt, new)
        new["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        sent = new["metadata"].get("managedFields")
        if sent is not None and sent != existing["metadata"].get("managedFields") and subresource != "status":
            # A client may rewrite field ownership (kubectl does, moving an object from client-side apply to
            # server-side apply); an empty list resets it.
            managed_already = True
            if not sent:
                new["metadata"].pop("managedFields")
        if not managed_already:
            new["metadata"]["managedFields"] = existing["metadata"].get("managedFields")
            if not new["metadata"]["managedFields"]:
                new["metadata"].pop("managedFields")
            manager = ctx.field_manager or "unknown"
            fieldmanager.record_update(
                existing,
                new,
                manager,
                api_version=rt.group_version,
                now=rfc3339(self.clock),
                subresource=subresource,
            )
        if new == existing:
            return existing  # a no-op write keeps its resourceVersion and sends no event, as on a real server
        if ctx.dry_run:
            return new
        if new["metadata"].get("deletionTimestamp") and not self._finalizers(rt, new):
            return self.store.remove(rt.key, new)
        stored = self.store.put(rt.key, new, "MODIFIED")
        self._after_write(rt, stored)
        return stored

    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        body: bytes,
        ctx: WriteContext = SYSTEM,
        *,
        subresource: str = "",
        force: bool = False,
    ) -> tuple[Obj, bool]:
        """(object, created). Only server-side apply creates a missing object."""
        ptype = content_type.split(";")[0].strip()
        existing = self.store.get(rt.key, namespace if rt.namespaced else "", name)
        if ptype in (patching.APPLY_PATCH, patching.APPLY_PATCH_CBOR):
            if ptype == patching.APPLY_PATCH_CBOR:
                raise ApiError(415, "CBOR apply patches are not supported by the simulator; send YAML or JSON",
                               reason="UnsupportedMediaType")  # fmt: skip
            if not ctx.field_manager:
                raise ApiError(400, "PATCH, fieldManager is required for apply requests")
            config = decode_body(body, "yaml")
            if not isinstance(config, dict):
                raise ApiError(400, "apply patch must be an object")
            config_meta = config.setdefault("metadata", {})
            if config_meta.get("name") and config_meta["name"] != name:
                raise ApiError(400, "the name of the object does not match the name on the URL")
            config_meta["name"] = name
            if rt.namespaced:
                config_meta["namespace"] = namespace
            self._check_body(rt, config)
            self._validate_fields(rt, config, ctx)
            merged = fieldmanager.apply(
                existing,
                config,
                ctx.field_manager,
                force=force,
                api_version=rt.group_version,
                now=rfc3339(self.clock),
                subresource=subresource,
            )
            if existing is None:
                # The apply configuration's field ownership travels in the merged object's managedFields.
                return self.create(rt, namespace, merged, _no_manager(ctx)), True
            merged["metadata"].pop("resourceVersion", None)
            return self.update(rt, namespace, name, merged, ctx, subresource=subresource, managed_already=True), False
        if existing is None:
            raise not_found(rt.group, rt.plural, name)
        doc = decode_body(body, "json")
        base = copy.deepcopy(existing)
        if ptype == patching.JSON_PATCH:
            new = patching.json_patch(base, doc)
        elif ptype == patching.MERGE_PATCH:
            new = patching.merge_patch(base, doc)
        elif ptype == patching.STRATEGIC_PATCH:
            if rt.crd is not None:
                raise ApiError(
                    415,
                    "strategic merge patch is not supported for custom resources; use a merge patch",
                    reason="UnsupportedMediaType",
                )
            new = patching.strategic_merge(base, doc)
        else:
            raise ApiError(415, f"unsupported patch type {ptype!r}", reason="UnsupportedMediaType")
        if not isinstance(new, dict):
            raise ApiError(422, "the patch result is not an object")
        if not (isinstance(doc, dict) and (doc.get("metadata") or {}).get("resourceVersion")) and not (
            ptype == patching.JSON_PATCH and any(op.get("path") == "/metadata/resourceVersion" for op in doc)
        ):
            new.setdefault("metadata", {})["resourceVersion"] = existing["metadata"]["resourceVersion"]
        return self.update(rt, namespace, name, new, ctx, subresource=subresource), False

    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        options: dict[str, Any] | None = None,
        ctx: WriteContext = SYSTEM,
    ) -> tuple[Obj, bool]:
        """(reply body, finished). A finalizer-bearing object is only marked; ``finished`` says it is gone."""
        existing = self.get(rt, namespace, name)
        options = options or {}
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != existing["metadata"].get("uid"):
            raise conflict(rt.group, rt.plural, name, "Precondition failed: UID in precondition does not match")
        if pre.get("resourceVersion") and pre["resourceVersion"] != existing["metadata"].get("resourceVersion"):
            raise conflict(rt.group, rt.plural, name, "Precondition failed: ResourceVersion does not match")
        policy = options.get("propagationPolicy") or ("Orphan" if options.get("orphanDependents") else "")
        if ctx.dry_run:
            return existing, False
        if policy == "Orphan":
            self.orphan_uids.add(existing["metadata"]["uid"])
        if policy == "Foreground" and not existing["metadata"].get("deletionTimestamp") and rt.kind != "Namespace":
            # The owner stays (Terminating) until the garbage collector has deleted its dependents.
            existing = copy.deepcopy(existing)
            finalizers = existing["metadata"].setdefault("finalizers", [])
            if FOREGROUND not in finalizers:
                finalizers.append(FOREGROUND)
        if self._finalizers(rt, existing):
            if existing["metadata"].get("deletionTimestamp"):
                return existing, False
            marked = copy.deepcopy(existing)
            marked["metadata"]["deletionTimestamp"] = rfc3339(self.clock)
            marked["metadata"]["deletionGracePeriodSeconds"] = 0
            if rt.kind == "Namespace":
                marked.setdefault("status", {})["phase"] = "Terminating"
            return self.store.put(rt.key, marked, "MODIFIED"), False
        gone = self.store.remove(rt.key, existing)
        self._after_delete(rt, gone)
        if rt.kind in _RETURNS_DELETED or rt.crd is not None:
            return gone, True
        details = {"name": name, "kind": rt.plural, "uid": existing["metadata"].get("uid")}
        if rt.group:
            details["group"] = rt.group
        return success_status(details), True

    # ---- helpers
    def _check_body(self, rt: ResourceType, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise ApiError(400, "the body of the request must be an object")
        obj = copy.deepcopy(body)
        api_version = obj.get("apiVersion") or rt.group_version
        kind = obj.get("kind") or rt.kind
        if kind != rt.kind or api_version.rpartition("/")[0] != rt.group:
            raise ApiError(
                400,
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({rt.group_version})"
                if kind == rt.kind
                else f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})",
            )
        obj["apiVersion"], obj["kind"] = rt.group_version, rt.kind
        if not isinstance(obj.get("metadata", {}), dict):
            raise invalid(rt.group, rt.kind, "", [("FieldValueInvalid", "metadata", "must be an object")])
        return obj

    def _validate_name(self, rt: ResourceType, name: Any) -> None:
        if not name:
            raise invalid(
                rt.group,
                rt.kind,
                "",
                [("FieldValueRequired", "metadata.name", "Required value: name or generateName is required")],
            )
        pattern, limit = (_DNS_LABEL, 63) if rt.kind in _LABEL_NAMED else (_DNS_SUBDOMAIN, 253)
        if rt.kind in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
            return  # RBAC names are path segments, which allows ':' (system:masters bindings)
        if not isinstance(name, str) or len(name) > limit or not pattern.match(name):
            what = "RFC 1123 label" if pattern is _DNS_LABEL else "RFC 1123 subdomain"
            raise invalid(
                rt.group,
                rt.kind,
                str(name),
                [
                    (
                        "FieldValueInvalid",
                        "metadata.name",
                        f'Invalid value: "{name}": a lowercase {what} must consist of lower case alphanumeric '
                        "characters, '-' or '.', and must start and end with an alphanumeric character",
                    )
                ],
            )

    def _validate_fields(self, rt: ResourceType, obj: Obj, ctx: WriteContext) -> None:
        if ctx.field_validation == "Ignore" or not rt.model_module:
            return
        unknown = unknown_fields(rt.model_module, rt.kind, obj)
        if not unknown:
            return
        messages = [f'unknown field "{u}"' for u in unknown]
        if ctx.field_validation == "Strict":
            raise ApiError(400, "strict decoding error: " + ", ".join(messages))
        ctx.warnings.extend(messages)

    def _validate_spec(self, rt: ResourceType, obj: Obj) -> None:
        if rt.crd is not None:
            return
        causes = validation.validate(rt.kind, obj)
        if causes:
            raise invalid(rt.group, rt.kind, obj["metadata"].get("name", ""), causes)

    def _check_custom(self, rt: ResourceType, obj: Obj, ctx: WriteContext) -> Obj:
        """A custom resource pruned and validated against its CRD version's schema (422 with causes if invalid)."""
        if rt.crd is None:
            return obj
        version: dict[str, Any] = next(
            (v for v in rt.crd["spec"].get("versions") or [] if v.get("name") == rt.version), {}
        )
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if not schema:
            return obj
        result = crdschema.check(schema, obj)
        if result.causes:
            raise invalid(rt.group, rt.kind, obj["metadata"].get("name", ""), result.causes)
        if result.unknown and ctx.field_validation == "Strict":
            raise ApiError(400, "strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in result.unknown))
        if ctx.field_validation == "Warn":
            ctx.warnings.extend(f'unknown field "{u}"' for u in result.unknown)
        return result.obj

    def _check_namespace_open(self, namespace: str) -> None:
        ns = self.store.get("/namespaces", "", namespace)
        if ns is None:
            raise not_found("", "namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                f"unable to create new content in namespace {namespace} because it is being terminated",
                reason="Forbidden",
                details={"name": namespace, "kind": "namespaces"},
            )

    def _finalizers(self, rt: ResourceType, obj: Obj) -> bool:
        if obj["metadata"].get("finalizers"):
            return True
        return rt.kind == "Namespace" and bool((obj.get("spec") or {}).get("finalizers"))

    def skip_ips(self, count: int) -> None:
        self._next_ip += count

    def allocate_ip(self, base: str) -> str:
        self._next_ip += 1
        return str(ipaddress.ip_address(base) + self._next_ip)

    def _default(self, rt: ResourceType, obj: Obj) -> None:
        """Defaulting and the admission steps a real server would run on create."""
        kind = rt.kind if rt.crd is None else ""
        meta = obj["metadata"]
        if kind == "Namespace":
            obj.setdefault("spec", {})["finalizers"] = ["kubernetes"]
            obj["status"] = {"phase": "Active"}
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        elif kind == "Secret":
            obj.setdefault("type", "Opaque")
            string_data = obj.pop("stringData", None) or {}
            data = obj.setdefault("data", {})
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()
            if not data:
                obj.pop("data")
        elif kind == "Service":
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            spec.setdefault("sessionAffinity", "None")
            if spec.get("clusterIP") != "None" and not spec.get("clusterIP"):
                spec["clusterIP"] = self.allocate_ip("10.96.0.0")
            if spec.get("clusterIP"):
                spec["clusterIPs"] = [spec["clusterIP"]]
            for p in spec.get("ports") or []:
                p.setdefault("protocol", "TCP")
                p.setdefault("targetPort", p.get("port"))
            obj.setdefault("status", {"loadBalancer": {}})
        elif kind == "Pod":
            spec = obj.setdefault("spec", {})
            spec.setdefault("restartPolicy", "Always")
            spec.setdefault("dnsPolicy", "ClusterFirst")
            spec.setdefault("schedulerName", "default-scheduler")
            spec.setdefault("terminationGracePeriodSeconds", 30)
            spec.setdefault("serviceAccountName", "default")
            for c in spec.get("containers") or []:
                c.setdefault("imagePullPolicy", "IfNotPresent")
                c.setdefault("terminationMessagePath", "/dev/termination-log")
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        elif kind in ("Deployment", "ReplicaSet", "StatefulSet"):
            spec = obj.setdefault("spec", {})
            spec.setdefault("replicas", 1)
            if kind != "ReplicaSet":
                spec.setdefault("revisionHistoryLimit", 10)
            if kind == "Deployment":
                spec.setdefault("progressDeadlineSeconds", 600)
                # Protobuf bodies carry an empty strategy struct: default what is unset, as the real defaulter does.
                strategy = spec.setdefault("strategy", {})
                strategy.setdefault("type", "RollingUpdate")
                if strategy["type"] == "RollingUpdate":
                    rolling = strategy.setdefault("rollingUpdate", {})
                    rolling.setdefault("maxSurge", "25%")
                    rolling.setdefault("maxUnavailable", "25%")
            self._require_selector(rt, obj)
            obj.pop("status", None)
        elif kind == "DaemonSet":
            self._require_selector(rt, obj)
            obj.pop("status", None)
        elif kind == "Job":
            spec = obj.setdefault("spec", {})
            spec.setdefault("completions", 1)
            spec.setdefault("parallelism", 1)
            spec.setdefault("backoffLimit", 6)
            uid = meta["uid"]
            labels = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": meta["name"]}
            spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
            tmeta = spec.setdefault("template", {}).setdefault("metadata", {})
            tmeta.setdefault("labels", {}).update(labels)
            spec["template"].setdefault("spec", {}).setdefault("restartPolicy", "Never")
            obj.pop("status", None)
        elif kind == "CustomResourceDefinition":
            self._establish_crd(obj)
        elif kind == "ServiceAccount" and not obj.get("secrets"):
            obj.pop("secrets", None)

    def _require_selector(self, rt: ResourceType, obj: Obj) -> None:
        spec = obj["spec"]
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        selector = (spec.get("selector") or {}).get("matchLabels")
        if not spec.get("selector"):
            raise invalid(
                rt.group,
                rt.kind,
                obj["metadata"]["name"],
                [("FieldValueRequired", "spec.selector", "Required value")],
            )
        if selector and any(labels.get(k) != v for k, v in selector.items()):
            raise invalid(
                rt.group,
                rt.kind,
                obj["metadata"]["name"],
                [
                    (
                        "FieldValueInvalid",
                        "spec.template.metadata.labels",
                        f"Invalid value: {json.dumps(labels)}: `selector` does not match template `labels`",
                    )
                ],
            )

    def _establish_crd(self, obj: Obj) -> None:
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        causes = []
        if not spec.get("group"):
            causes.append(("FieldValueRequired", "spec.group", "Required value"))
        if not names.get("plural") or not names.get("kind"):
            causes.append(("FieldValueRequired", "spec.names", "Required value: plural and kind"))
        if (
            names.get("plural")
            and spec.get("group")
            and obj["metadata"]["name"] != f"{names['plural']}.{spec['group']}"
        ):
            causes.append(
                (
                    "FieldValueInvalid",
                    "metadata.name",
                    'Invalid value: must be spec.names.plural+"."+spec.group',
                )
            )
        if not spec.get("versions"):
            causes.append(("FieldValueRequired", "spec.versions", "Required value"))
        if causes:
            raise invalid("apiextensions.k8s.io", "CustomResourceDefinition", obj["metadata"]["name"], causes)
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
        now = rfc3339(self.clock)
        obj["status"] = {
            "acceptedNames": {k: v for k, v in names.items()},
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "lastTransitionTime": now,
                 "message": "no conflicts found"},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "lastTransitionTime": now, "message": "the initial names have been accepted"},
            ],
            "storedVersions": [v["name"] for v in spec["versions"] if v.get("storage")],
        }  # fmt: skip

    def _keep_on_update(self, rt: ResourceType, old: Obj, new: Obj) -> None:
        """Fields the server keeps across an update whatever the client sent (allocated IPs, CRD status)."""
        if rt.crd is not None:
            return
        if rt.kind == "Service":
            spec = new.setdefault("spec", {})
            old_spec = old.get("spec") or {}
            if old_spec.get("clusterIP") and not spec.get("clusterIP"):
                spec["clusterIP"] = old_spec["clusterIP"]
                spec["clusterIPs"] = old_spec.get("clusterIPs", [old_spec["clusterIP"]])
            for p in spec.get("ports") or []:
                p.setdefault("protocol", "TCP")
                p.setdefault("targetPort", p.get("port"))
        elif rt.kind == "CustomResourceDefinition":
            self._establish_crd(new)
        elif rt.kind == "Namespace":
            new.setdefault("spec", {}).setdefault("finalizers", (old.get("spec") or {}).get("finalizers", []))
        elif rt.kind == "Secret" and new.get("stringData"):
            data = new.setdefault("data", {})
            for k, v in new.pop("stringData").items():
                data[k] = base64.b64encode(str(v).encode()).decode()

    def _after_write(self, rt: ResourceType, obj: Obj) -> None:
        if rt.kind == "CustomResourceDefinition" and rt.crd is None:
            self.registry.set_crd(obj)

    def _after_delete(self, rt: ResourceType, obj: Obj) -> None:
        if rt.kind == "CustomResourceDefinition" and rt.crd is None:
            self.registry.remove_crd(obj["metadata"]["name"])
            for t in {x.key for x in crd_types(obj)}:
                for o in self.store.list(t):
                    self.store.remove(t, o)

    def issue_token(self, user: UserInfo, lifetime: dt.timedelta) -> tuple[str, dt.datetime]:
        """A bound service-account token: valid for ``lifetime``, then refused (the expired ones are dropped)."""
        now = self.clock.now()
        for old in [t for t, at in self.token_expiry.items() if at <= now]:
            self.tokens.pop(old, None)
            del self.token_expiry[old]
        token = secrets.token_urlsafe(32)
        expires = now + lifetime
        self.tokens[token] = user
        self.token_expiry[token] = expires
        return token, expires

    def user_for_token(self, token: str) -> UserInfo | None:
        """Who a bearer token is, if it is valid in this cluster now."""
        user = self.tokens.get(token)
        if user is None:
            return None
        expires = self.token_expiry.get(token)
        if expires is not None and expires <= self.clock.now():
            return None
        return user


def _key(o: Obj) -> tuple[str, str]:
    m = o.get("metadata") or {}
    return m.get("namespace") or "", m.get("name") or ""


def _no_manager(ctx: WriteContext) -> WriteContext:
    return WriteContext(ctx.user, ctx.dry_run, "", ctx.field_validation, ctx.warnings)
