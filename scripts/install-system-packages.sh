#!/usr/bin/env bash
# Debian packages the project needs, installed only when missing (CI may start from a bare machine):
#   libpython3.X  tritonserver's Python-backend stub links libpython3.X.so
#   libb64-0d     perf_analyzer (from the tritonclient 2.50.0 wheel) links libb64.so.0d
#   docker-compose  validates docker-compose.yml in the tests (`docker-compose config`; no engine needed)
#   espeak-ng     synthesizes the default model's held-out test speech (and its training data)
#   kubectl       renders deploy/k8s with its built-in kustomize in the tests (no cluster needed)
set -euo pipefail
py=$(python3 -c 'import sys; print(f"{sys.version_info.major}.{sys.version_info.minor}")')
need=()
has_lib() { ldconfig -p | grep -q "$1" || [ -e "$(python3 -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')/$1" ]; }
has_lib "libpython${py}.so" || need+=("libpython${py}")
has_lib "libb64.so.0d" || need+=("libb64-0d")
command -v docker-compose >/dev/null || need+=("docker-compose")
command -v espeak-ng >/dev/null || need+=("espeak-ng")
command -v kubectl >/dev/null || need+=("kubectl")
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${need[*]} (install them, or run as root)" >&2
  exit 1
fi
echo "installing Debian packages: ${need[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
