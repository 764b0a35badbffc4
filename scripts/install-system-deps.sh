#!/usr/bin/env bash
# Installs the system packages the test suite drives for real. Idempotent; quiet when all is present.
set -euo pipefail
need=()
# PostgreSQL: initdb/pg_ctl on PATH or in Debian's /usr/lib/postgresql/<major>/bin (tests/support/postgres.py looks
# in both). As root the tests run it as the `postgres` user, which the package creates.
if ! { command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } \
  || { [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; }; then
  need+=(postgresql)
fi
# HAProxy: the load balancer the multi-replica cluster-connect test puts in front of two replicas, as operators do.
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
# squid (with ssl_bump: Debian's squid-openssl) is the enterprise proxy of the gateway tests (tests/gateway/).
if ! command -v squid >/dev/null 2>&1; then
  need+=(squid-openssl)
fi
# Private link (issue 13): the network-namespace test's on-prem DNS server (the binary only, no service), `ip netns`,
# and socat, which bench/privatelink.py compares the endpoint forwarder with.
command -v dnsmasq >/dev/null 2>&1 || need+=(dnsmasq-base)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v socat >/dev/null 2>&1 || need+=(socat)
# The portal's browser tests (tests/portal/) drive Debian's chromium headless through Playwright (no browser download).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# kubectl is not one of them: the tests drive given versions, which scripts/install-kubectl.sh puts in .cache/kubectl.
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "missing system packages: ${need[*]} (run as root or install them)" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
