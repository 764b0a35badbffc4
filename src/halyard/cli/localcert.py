"""The certificate of ``proxy``'s local listener, made for one run: a CA (which goes into the kubeconfig) and a
server certificate for 127.0.0.1 and localhost signed by it. kubectl sends bearer tokens only over HTTPS, and a CA
of its own per run means no certificate on disk outlives the proxy."""

from __future__ import annotations

import datetime
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from halyard.core.pki import cert_to_pem, create_ca, issue_certificate, key_to_pem, new_ec_key

VALIDITY = datetime.timedelta(days=30)


@dataclass(frozen=True)
class LocalCertificate:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def server_context(self) -> ssl.SSLContext:
        """A TLS server context that speaks HTTP/1.1 only: the relay stream carries HTTP/1.1 bytes, so kubectl must
        not negotiate HTTP/2 with the listener."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["http/1.1"])
        # load_cert_chain reads files only: a private directory that is gone as soon as the context holds the key.
        with tempfile.TemporaryDirectory(prefix="halyard-proxy-") as directory:
            cert, key = Path(directory, "tls.crt"), Path(directory, "tls.key")
            cert.write_bytes(self.cert_pem)
            key.touch(mode=0o600)
            key.write_bytes(self.key_pem)
            context.load_cert_chain(cert, key)
        return context


def make_local_certificate(now: datetime.datetime | None = None) -> LocalCertificate:
    now = now or datetime.datetime.now(datetime.UTC)
    ca_key, ca = create_ca("halyard connectedk8s proxy (this run)", valid_days=VALIDITY.days, now=now)
    key = new_ec_key()
    cert = issue_certificate(
        ca_key, ca, key.public_key(), "127.0.0.1", valid_for=VALIDITY, dns_names=["localhost"],
        ip_addresses=["127.0.0.1"], server=True, now=now,
    )  # fmt: skip
    return LocalCertificate(ca_pem=cert_to_pem(ca), cert_pem=cert_to_pem(cert), key_pem=key_to_pem(key))
