#!/usr/bin/env bash
# Debian packages the project needs, installed only when missing (CI may start from a bare machine).
#   libpython3.11: tritonserver's Python-backend stub links libpython3.X.so
set -euo pipefail
py=$(python3 -c 'import sys; print(f"{sys.version_info.major}.{sys.version_info.minor}")')
need=()
python3 - <<PY || need+=("libpython${py}")
import ctypes.util, sys, sysconfig, os
libdir = sysconfig.get_config_var("LIBDIR") or ""
name = f"libpython{sys.version_info.major}.{sys.version_info.minor}.so"
ok = os.path.exists(os.path.join(libdir, name)) or ctypes.util.find_library(f"python{sys.version_info.major}.{sys.version_info.minor}")
sys.exit(0 if ok else 1)
PY
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${need[*]} (run as root, or install them yourself)" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
