"""Kubernetes ``Status`` errors: handlers raise :class:`ApiError`, the HTTP layer serialises it."""

from __future__ import annotations

from typing import Any

REASON_BY_CODE = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    500: "InternalError",
    501: "NotImplemented",
}


class ApiError(Exception):
    """An error a Kubernetes client should see, with the exact code, reason and details a real server sends."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASON_BY_CODE.get(code, "Unknown")
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _qualified(group: str, resource: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(group: str, resource: str, name: str) -> ApiError:
    return ApiError(
        404,
        f'{_qualified(group, resource)} "{name}" not found',
        details={"name": name, "group": group, "kind": resource} if group else {"name": name, "kind": resource},
    )


def already_exists(group: str, resource: str, name: str) -> ApiError:
    details = {"name": name, "kind": resource} | ({"group": group} if group else {})
    return ApiError(
        409, f'{_qualified(group, resource)} "{name}" already exists', reason="AlreadyExists", details=details
    )


def conflict(group: str, resource: str, name: str, why: str) -> ApiError:
    details = {"name": name, "kind": resource} | ({"group": group} if group else {})
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {_qualified(group, resource)} "{name}": {why}',
        reason="Conflict",
        details=details,
    )


def invalid(group: str, kind: str, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """422 Invalid; ``causes`` are (reason, field, message) like ``("FieldValueRequired", "metadata.name", ...)``."""
    text = "; ".join(f"{field}: {message}" for _, field, message in causes)
    details: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "causes": [{"reason": r, "message": m, "field": f} for r, f, m in causes],
    }
    if group:
        details["group"] = group
    return ApiError(422, f'{kind}{"." + group if group else ""} "{name}" is invalid: {text}', details=details)


def forbidden(user: str, verb: str, group: str, resource: str, namespace: str, name: str = "",
              subresource: str = "") -> ApiError:  # fmt: skip
    """kube-apiserver's wording: the object is named by its resource, the denied permission with its subresource
    (``pods "p" is forbidden: User "u" cannot create resource "pods/exec" ...``)."""
    what = f'{resource} "{name}"' if name else resource
    scope = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    grp = f'in API group "{group}"'
    permission = f"{resource}/{subresource}" if subresource else resource
    details: dict[str, Any] = {"kind": resource} | ({"group": group} if group else {})
    if name:
        details["name"] = name
    return ApiError(
        403,
        f'{what} is forbidden: User "{user}" cannot {verb} resource "{permission}" {grp}{scope}',
        details=details,
    )


def success_status(details: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
