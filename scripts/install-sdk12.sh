#!/usr/bin/env bash
# azure-mgmt-hybridkubernetes 1.2.0 (api-version 2021-10-01) in its own virtual environment: the compat tests drive
# the control plane with this older SDK too, and it cannot share .venv with 2.0.0. Test-only; quick when present.
set -euo pipefail
venv=${1:-.cache/sdk12}
want=1.2.0
probe="import importlib.metadata as m, azure.identity; assert m.version('azure-mgmt-hybridkubernetes') == '$want'"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$probe" >/dev/null 2>&1; then exit 0; fi
python3 -m venv "$venv"
"$venv/bin/pip" install -q "azure-mgmt-hybridkubernetes==$want" azure-identity
"$venv/bin/python" -c "$probe"
