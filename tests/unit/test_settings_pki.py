import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509

from halyard.core.pki import ensure_server_tls
from halyard.core.sealing import Sealer
from halyard.core.settings import Settings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("host", "ok"), [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False), ("10.1.2.3", False)]
)
def test_plain_http_only_on_loopback(host: str, ok: bool) -> None:
    settings = Settings(host=host, insecure_http=True)
    if ok:
        settings.check()
        assert settings.base_url.startswith("http://")
    else:
        with pytest.raises(ValueError, match="loopback"):
            settings.check()


def test_tls_cert_and_key_go_together(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="together"):
        Settings(tls_cert=tmp_path / "c.pem").check()


def test_audiences_are_distinct() -> None:
    s = Settings(domain="example.org")
    assert s.audience == "https://management.example.org/"
    assert s.agent_audience == "https://agents.example.org/"


def test_server_tls_is_generated_once_and_reissued_for_new_names(tmp_path: Path) -> None:
    first = ensure_server_tls(tmp_path, "halyard", ["localhost"], ["127.0.0.1"])
    ca_before = first.ca_cert.read_bytes()
    cert_before = first.cert.read_bytes()
    assert (first.key.stat().st_mode & 0o077) == 0 and (first.ca_key.stat().st_mode & 0o077) == 0
    again = ensure_server_tls(tmp_path, "halyard", ["localhost"], ["127.0.0.1"])
    assert again.cert.read_bytes() == cert_before
    more = ensure_server_tls(tmp_path, "halyard", ["localhost", "halyard.example"], ["127.0.0.1"])
    assert more.ca_cert.read_bytes() == ca_before  # clients keep trusting the same CA
    cert = x509.load_pem_x509_certificate(more.cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "halyard.example" in names.get_values_for_type(x509.DNSName)
    ca = x509.load_pem_x509_certificate(ca_before)
    assert cert.issuer == ca.subject
    assert cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=365)


def test_sealer_round_trip_and_wrong_key(tmp_path: Path) -> None:
    sealer = Sealer.from_data_dir(tmp_path)
    token = sealer.seal_json({"a": "secret"})
    assert b"secret" not in token
    assert Sealer.from_data_dir(tmp_path).unseal_json(token) == {"a": "secret"}
    with pytest.raises(ValueError, match="data key"):
        Sealer.from_data_dir(tmp_path / "other").unseal(token)
