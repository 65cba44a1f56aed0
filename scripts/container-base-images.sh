#!/usr/bin/env bash
# The base image the Dockerfiles start from (python:3.11-slim), made sure to be in the local image store.
# Pulled when a registry is reachable. Where none is (an air-gapped or proxied machine, as in this project's
# CI), a LOCAL STAND-IN is built from the distribution's packages instead and tagged under the same name:
#   a Debian bookworm root filesystem (mmdebstrap, from this machine's apt sources) with Python 3.11, pip and
#   libpython3.11 (the Python-backend stub links it), the host's extra CA certificates trusted (corporate TLS
#   proxies: pip inside the image must reach PyPI through them), pip allowed to install system-wide.
# The stand-in is Debian's Python 3.11.2 in /usr, not the official image's 3.11.x in /usr/local; what the
# Dockerfiles use (python, pip, useradd, libpython3.11) behaves the same. It is announced loudly.
#   usage: scripts/container-base-images.sh [podman|docker]     (root, for mmdebstrap and podman import)
set -euo pipefail
ENGINE=${1:-podman}
IMAGE=docker.io/library/python:3.11-slim
PULL_TIMEOUT_S=${PULL_TIMEOUT_S:-30}

if "$ENGINE" image inspect "$IMAGE" >/dev/null 2>&1; then exit 0; fi
if timeout "$PULL_TIMEOUT_S" "$ENGINE" pull -q "$IMAGE" >/dev/null 2>&1; then exit 0; fi

banner() { printf '\n%s\n!!! %s\n%s\n\n' "$(printf '!%.0s' {1..100})" "$1" "$(printf '!%.0s' {1..100})" >&2; }
banner "$IMAGE cannot be pulled: building a LOCAL STAND-IN from Debian packages and tagging it $IMAGE"
command -v mmdebstrap >/dev/null || { echo "mmdebstrap is needed for the stand-in: apt-get install mmdebstrap" >&2; exit 1; }

# this machine's apt mirror, as "deb URI SUITE COMPONENTS" lines (deb822 sources, or the one-line format)
sources=/etc/apt/sources.list.d/debian.sources
if [ -r "$sources" ]; then
  mapfile -t mirrors < <(awk '
    function flush() { if (types ~ /(^| )deb( |$)/) { n = split(uris, u, " "); m = split(suites, s, " ")
                         for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) print "deb " u[i] " " s[j] " " comps }
                       types = uris = suites = comps = "" }
    /^[ \t]*#/ { next }
    /^[ \t]*$/ { flush(); next }
    { k = $1; sub(/:$/, "", k); $1 = ""; sub(/^ +/, "")
      if (k == "Types") types = $0; else if (k == "URIs") uris = $0
      else if (k == "Suites") suites = $0; else if (k == "Components") comps = $0 }
    END { flush() }' "$sources")
else
  mapfile -t mirrors < <(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null || true)
fi
[ ${#mirrors[@]} -gt 0 ] || { echo "no apt source found in $sources or /etc/apt/sources.list" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bundle=/etc/ssl/certs/ca-certificates.crt
TMPDIR=$work mmdebstrap -q --variant=apt \
  --include=ca-certificates,python3,python3-pip,python-is-python3,libpython3.11,passwd \
  --customize-hook='cp /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/" 2>/dev/null || true' \
  --customize-hook='chroot "$1" update-ca-certificates >/dev/null' \
  --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED' \
  --customize-hook='ln -sf pip3 "$1/usr/bin/pip"' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  bookworm "$work/rootfs.tar" "${mirrors[@]}"
"$ENGINE" import -q \
  --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" --change "ENV LANG=C.UTF-8" \
  --change "ENV SSL_CERT_FILE=$bundle" --change "ENV REQUESTS_CA_BUNDLE=$bundle" --change "ENV PIP_CERT=$bundle" \
  --change 'CMD ["python3"]' \
  "$work/rootfs.tar" "$IMAGE" >/dev/null
banner "built the stand-in $IMAGE (Debian bookworm's Python 3.11; NOT the official image)"
