#!/usr/bin/env bash
# The real Azure CLI from PyPI, in its own virtual environment: test-only, never a dependency of Halyard.
set -euo pipefail
venv=${1:-.cache/azcli}
if [ -x "$venv/bin/az" ] && "$venv/bin/az" version >/dev/null 2>&1; then exit 0; fi
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q azure-cli
