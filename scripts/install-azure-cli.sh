#!/usr/bin/env bash
# The real Azure CLI from PyPI, in its own virtual environment: test-only, never a dependency of Halyard.
# Pinned, so the compatibility tests (tests/compat) check the version docs/azure-cli.md names; quick when present.
set -euo pipefail
venv=${1:-.cache/azcli}
want=2.91.0
installed() { "$venv/bin/az" version --query '"azure-cli"' -o tsv 2>/dev/null; }
if [ -x "$venv/bin/az" ] && [ "$(installed)" = "$want" ]; then exit 0; fi
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q "azure-cli==$want"
[ "$(installed)" = "$want" ] || { echo "azure-cli $want did not install into $venv" >&2; exit 1; }
