"""A private endpoint's DNS records rendered for pasting (the guide's "DNS configuration" page), pure: a table, a
zone-file fragment, dnsmasq ``address=`` lines, or ``/etc/hosts`` lines."""

from __future__ import annotations

from typing import Any

FORMATS = ("table", "zone", "dnsmasq", "hosts")


def records(endpoint: dict[str, Any]) -> list[tuple[str, str]]:
    """(FQDN, address) pairs from the endpoint's ``customDnsConfigs``."""
    pairs = []
    for entry in endpoint.get("properties", {}).get("customDnsConfigs") or []:
        for address in entry.get("ipAddresses") or []:
            pairs.append((str(entry["fqdn"]), str(address)))
    return pairs


def render(pairs: list[tuple[str, str]], fmt: str, ttl: int = 10) -> str:
    if fmt == "zone":
        return "".join(f"{fqdn}.\t{ttl}\tIN\tA\t{address}\n" for fqdn, address in pairs)
    if fmt == "dnsmasq":
        return "".join(f"address=/{fqdn}/{address}\n" for fqdn, address in pairs)
    if fmt == "hosts":
        return "".join(f"{address}\t{fqdn}\n" for fqdn, address in pairs)
    width = max([len("FQDN"), *(len(f) for f, _ in pairs)])
    lines = [f"{'FQDN':<{width}}  IP address", f"{'-' * width}  ----------"]
    lines += [f"{fqdn:<{width}}  {address}" for fqdn, address in pairs]
    return "\n".join(lines) + "\n"
