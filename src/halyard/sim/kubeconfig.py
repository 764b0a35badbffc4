"""Credentials of the virtual clusters: client certificates bound to one cluster, and kubeconfig files."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import os
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from halyard.core.pki import PrivateKey, cert_to_pem, key_to_pem
from halyard.sim.rbac import UserInfo


def issue_client_certificate(
    ca_key: PrivateKey, ca_cert: x509.Certificate, cluster: str, user: str, groups: list[str]
) -> tuple[bytes, bytes]:
    """(cert PEM, key PEM) for ``user`` in ``cluster``. Groups go in O, as Kubernetes reads them; the cluster goes
    in OU, so a certificate for one virtual cluster is refused by every other (they share one CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
        + [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"halyard-sim:{cluster}"),
            x509.NameAttribute(NameOID.COMMON_NAME, user),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert_to_pem(cert), key_to_pem(key)


@functools.lru_cache(maxsize=4096)
def client_identity(der: bytes) -> tuple[str, UserInfo] | None:
    """(cluster, user) of a client certificate the TLS layer already verified against the simulator's CA."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return None
    subject = cert.subject
    cn = [str(a.value) for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    ou = [str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
    groups = [str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    cluster = next((o.split(":", 1)[1] for o in ou if o.startswith("halyard-sim:")), None)
    if not cn or cluster is None:
        return None
    return cluster, UserInfo(cn[0], (*groups, "system:authenticated"))


def kubeconfig(
    name: str, server: str, ca_pem: bytes, token: str, cert_pem: bytes | None = None, key_pem: bytes | None = None
) -> dict[str, Any]:
    user: dict[str, Any] = {"token": token}
    if cert_pem and key_pem:
        user["client-certificate-data"] = base64.b64encode(cert_pem).decode()
        user["client-key-data"] = base64.b64encode(key_pem).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {"server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()},
            }
        ],
        "users": [{"name": f"{name}-admin", "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-admin", "namespace": "default"}}],
        "current-context": name,
        "preferences": {},
    }


def write_kubeconfig(path: Path, config: dict[str, Any]) -> None:
    """Write an owner-only kubeconfig, as JSON (which is YAML, and ~50x faster to emit than PyYAML's dumper).

    No fsync, unlike ``core.files.write_private``: kubeconfigs are rewritten at every start, and a thousand fsyncs
    were a third of the start time of a 1,000-cluster simulator.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(config, f, indent=2)
    os.replace(tmp, path)
