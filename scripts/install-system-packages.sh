#!/usr/bin/env bash
# Debian packages the project needs for PURPOSE (serve or test), installed only when missing (CI may start
# from a bare machine). Serving:
#   libpython3.X    tritonserver's Python-backend stub links libpython3.X.so
#   libb64-0d       perf_analyzer (from the tritonclient 2.50.0 wheel) links libb64.so.0d
# Testing, besides:
#   docker-compose  validates docker-compose.yml in the tests (`docker-compose config`; no engine needed)
#   espeak-ng       synthesizes the default model's held-out test speech (and its training data)
#   flite, festival (+ the festvox-kallpc16k and festvox-us-slt-hts voices)
#                   the default model's other-synthesizer figures (keyword_spotter.train, and its test)
#   chromium, chromium-driver  the try-it page (/ui) tested in a real headless browser (Selenium)
#   nodejs          runs the README's JavaScript example
#   strace          proves the decoder opens no file or socket for what a client sends (tests/test_triton_steps)
# kubectl is not here: Debian 12 has none recent enough (scripts/install-kubectl.sh takes it from PyPI).
# A package the archive lacks is reported and skipped, so that one missing name never blocks the others;
# whatever then needs it fails with a message naming it.
set -euo pipefail
purpose=${1:?usage: install-system-packages.sh serve|test}
py=$(python3 -c 'import sys; print(f"{sys.version_info.major}.{sys.version_info.minor}")')
libdir=$(python3 -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
has_lib() { ldconfig -p | grep -q "$1" || [ -e "$libdir/$1" ]; }
has_package() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
need=()
has_lib "libpython${py}.so" || need+=("libpython${py}")
has_lib "libb64.so.0d" || need+=("libb64-0d")
if [ "$purpose" = test ]; then
  for tool in docker-compose espeak-ng flite festival chromium strace; do
    command -v "$tool" >/dev/null || need+=("$tool")
  done
  command -v chromedriver >/dev/null || need+=("chromium-driver")
  command -v node >/dev/null || need+=("nodejs")
  for voice in festvox-kallpc16k festvox-us-slt-hts; do
    has_package "$voice" || need+=("$voice")
  done
fi
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${need[*]} (install them, or run as root)" >&2
  exit 1
fi
apt-get update -qq
available=()
for package in "${need[@]}"; do
  if [ -n "$(apt-cache policy "$package" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)" {print $2}')" ]; then
    available+=("$package")
  else
    echo "WARNING: Debian package $package is not in this machine's apt sources: skipped" >&2
  fi
done
if [ ${#available[@]} -gt 0 ]; then
  echo "installing Debian packages: ${available[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${available[@]}" >/dev/null
fi
