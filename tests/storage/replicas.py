"""Replicas of one control plane on one PostgreSQL database, configured as docs/operations.md deploys them."""

from __future__ import annotations

import shutil
from pathlib import Path

from cryptography.fernet import Fernet

from halyard.core.pki import ensure_server_tls
from tests.support.processes import ServerProcess, free_port


def replicas_of(url: str, tmp_path: Path, count: int, public_url: str | None = None) -> list[ServerProcess]:
    """``count`` servers (not started) sharing what the operator shares between replicas: the database, the data
    key, the CA (or --tls-cert) and the public URL (a load balancer's), which the first one's address stands in for
    unless given.
    """
    shared_tls = ensure_server_tls(tmp_path / "shared-tls", "halyard", ["localhost"], ["127.0.0.1"])
    env = {"HALYARD_DATA_KEY": Fernet.generate_key().decode()}
    ports = [free_port() for _ in range(count)]
    public_url = public_url or f"https://127.0.0.1:{ports[0]}"
    replicas = []
    for i, port in enumerate(ports):
        data_dir = tmp_path / f"replica{i}"
        (data_dir / "tls").mkdir(parents=True)
        for path in (shared_tls.ca_cert, shared_tls.ca_key):
            shutil.copy(path, data_dir / "tls" / path.name)
        replicas.append(
            ServerProcess(data_dir, port, database_url=url, env=env, extra_args=["--public-url", public_url])
        )
    return replicas
