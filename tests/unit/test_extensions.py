"""Pure parts of extensions: catalog ordering, helm values from settings, chart checks, the CLI's version rules."""

from __future__ import annotations

import pytest

from halyard.agent.extensionmanager import helm_values, release_namespace
from halyard.cli.errors import UsageError
from halyard.cli.k8sextension import _versioning
from halyard.controlplane.configuration.delivery import version_of
from halyard.controlplane.configuration.extensions import target_version
from halyard.controlplane.configuration.extensiontypes import ExtensionType, ExtensionTypeCatalog
from halyard.controlplane.configuration.published import check_chart
from halyard.core.errors import InvalidRequest
from tests.configuration.charts import tiny_chart


def test_the_newest_version_on_a_train_is_numeric_not_lexical() -> None:
    etype = ExtensionType("a.b", {"stable": ("1.9.0", "1.10.0", "1.2.3")})
    catalog = ExtensionTypeCatalog()
    catalog.add(etype)
    assert etype.newest("stable") == "1.10.0" and etype.newest("Stable") == "1.10.0"
    assert target_version({"extensionType": "A.B"}, catalog) == "1.10.0"
    assert target_version({"extensionType": "a.b", "autoUpgradeMinorVersion": False, "version": "1.2.3"}, catalog) == (
        "1.2.3"
    )


def test_settings_become_nested_helm_values_and_protected_ones_win() -> None:
    values = helm_values({"a.b": "1", "a.c": "2", "top": "x"}, {"a.b": "secret"})
    assert values == {"a": {"b": "secret", "c": "2"}, "top": "x"}
    assert helm_values({"a": "1", "a.b": "2"}, {}) == {"a": {"b": "2"}}  # a deeper key replaces a scalar


def test_release_namespace_follows_the_scope() -> None:
    assert release_namespace({"name": "e", "scope": {"cluster": {"releaseNamespace": "ns"}}}) == "ns"
    assert release_namespace({"name": "e", "scope": {"namespace": {"targetNamespace": "t"}}}) == "t"
    assert release_namespace({"name": "e"}) == "e"


def test_the_version_is_a_digest_of_the_configuration() -> None:
    one = [{"name": "a", "configurationSettings": {"x": "1"}}]
    assert version_of(one) == version_of([{"configurationSettings": {"x": "1"}, "name": "a"}])
    assert version_of(one) != version_of([{"name": "a", "configurationSettings": {"x": "2"}}])
    assert version_of([]) != version_of(one)


def test_a_chart_package_is_checked() -> None:
    assert check_chart(tiny_chart("1.0.0", "hello")) == "hello"
    for bad in (b"", b"not a tarball", b"\x1f\x8b" + b"\x00" * 20):
        with pytest.raises(InvalidRequest):
            check_chart(bad)


def test_the_cli_applies_az_version_rules() -> None:
    assert _versioning(None, "1.0.0", None) == {"autoUpgradeMinorVersion": False, "version": "1.0.0"}
    assert _versioning(True, None, "preview") == {"autoUpgradeMinorVersion": True, "releaseTrain": "preview"}
    with pytest.raises(UsageError):
        _versioning(True, "1.0.0", None)
    with pytest.raises(UsageError):
        _versioning(False, "1.0.0", "stable")
