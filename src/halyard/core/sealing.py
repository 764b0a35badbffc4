"""Encryption at rest for secrets the server must keep (signing keys, protected settings)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from halyard.core.files import write_private


class Sealer:
    """Authenticated encryption with the server's data key. Replicas must share the key."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> Sealer:
        """The key from ``HALYARD_DATA_KEY``, else ``<data-dir>/data.key`` (created on first start, mode 0600)."""
        env = os.environ.get("HALYARD_DATA_KEY")
        if env:
            return cls(env.encode())
        path = data_dir / "data.key"
        if not path.exists():
            write_private(path, Fernet.generate_key())
        return cls(path.read_bytes().strip())

    def seal(self, data: bytes) -> bytes:
        return self._fernet.encrypt(data)

    def unseal(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken as exc:
            raise ValueError("sealed data does not open with this data key (HALYARD_DATA_KEY mismatch?)") from exc

    def seal_json(self, value: Any) -> bytes:
        return self.seal(json.dumps(value).encode())

    def unseal_json(self, token: bytes) -> Any:
        return json.loads(self.unseal(token))
