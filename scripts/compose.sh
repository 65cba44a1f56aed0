#!/usr/bin/env bash
# The container stack (docker-compose.yml) with whichever engine this machine has.
#   scripts/compose.sh up        build and start it; returns once the gateway answers /ready (make compose-up)
#   scripts/compose.sh down      stop it; remove its containers, network, volumes and superseded image builds
#                                (make compose-down; the current images stay, for a quick next `up`)
#   scripts/compose.sh engine    print the engine it would use (exit 1, saying why, where none is usable)
#   scripts/compose.sh dns       check that containers can resolve each other's names (what `up` checks first)
#   scripts/compose.sh CMD ...   any other compose command (ps, logs -f gateway, ...) on the same files
# Engine: `docker compose` where a Docker engine runs, else podman with podman-compose (PATH or .venv).
# Variant: the GPU file alone where `nvidia-smi` sees a GPU, else with docker-compose.cpu.yml (slim CPU image).
# Settings (environment, with defaults):
#   COMPOSE_ENGINE=auto|docker|podman   COMPOSE_VARIANT=auto|gpu|cpu   COMPOSE_PROJECT_NAME=hf-audio-triton
#   GATEWAY_PORT=8080 (the published port)   COMPOSE_WAIT_S=600 (first builds included)
#   COMPOSE_INSTALL_MISSING=1 (podman without name resolution between containers: install its DNS plugin
#   with apt where this runs as root; 0: stop at once, naming the package)
#   and those docker-compose.yml reads (GATEWAY_DEFAULT_MODEL, GATEWAY_API_TOKEN, MODEL_REPOSITORY_DIR, ...).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-hf-audio-triton}
GATEWAY_PORT=${GATEWAY_PORT:-8080}
WAIT_S=${COMPOSE_WAIT_S:-600}

say() { echo "compose: $*" >&2; }

engine() {
  local wanted=${COMPOSE_ENGINE:-auto}
  if [ "$wanted" != podman ] && command -v docker >/dev/null && docker info >/dev/null 2>&1 \
      && docker compose version >/dev/null 2>&1; then
    echo docker; return
  fi
  if [ "$wanted" != docker ] && command -v podman >/dev/null; then
    if podman info >/dev/null 2>&1; then echo podman; return; fi
    say "podman is installed but not usable: $(podman info 2>&1 | tail -1)"
    exit 1
  fi
  say "no container engine: a running Docker engine with the compose plugin, or podman (+ podman-compose)"
  exit 1
}

ENGINE=$(engine)
if [ "$ENGINE" = docker ]; then
  COMPOSE=(docker compose)
else
  binary=$(command -v podman-compose || true)
  [ -n "$binary" ] || { [ -x "$ROOT/.venv/bin/podman-compose" ] && binary=$ROOT/.venv/bin/podman-compose; }
  [ -n "$binary" ] || { say "podman-compose is missing: pip install podman-compose (make install has it)"; exit 1; }
  COMPOSE=("$binary")
  if [ -z "${CONTAINERS_CONF:-}" ]; then
    # podman asks for nofile=1048576 in every container; a host whose own limits are lower (root without
    # CAP_SYS_RESOURCE, as in some CI sandboxes) then fails every start with "error setting rlimit".
    mkdir -p "$ROOT/.run"
    nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] || [ "$nofile" -gt 65536 ] && nofile=65536
    nproc=$(ulimit -Hu); [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
    printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n' \
      "$nofile" "$nofile" "$nproc" "$nproc" >"$ROOT/.run/containers.conf"
    export CONTAINERS_CONF=$ROOT/.run/containers.conf
  fi
fi

variant=${COMPOSE_VARIANT:-auto}
if [ "$variant" = auto ]; then
  if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then variant=gpu; else variant=cpu; fi
fi
FILES=(-f docker-compose.yml)
if [ "$variant" = cpu ]; then FILES+=(-f docker-compose.cpu.yml); fi
export GATEWAY_PORT

# podman resolves the stack's service names (the gateway asks for `triton`) only through a DNS plugin: CNI's
# dnsname, or netavark's aardvark-dns. Debian's podman pulls in neither; without one the gateway's every request
# fails with "Domain name not found" and `up` would wait its whole timeout. So: checked before anything starts.
PODMAN_HELPER_DIRS=${PODMAN_HELPER_DIRS:-/usr/local/libexec/podman /usr/local/lib/podman /usr/libexec/podman /usr/lib/podman}
CNI_PLUGIN_DIRS=${CNI_PLUGIN_DIRS:-/usr/local/libexec/cni /usr/libexec/cni /usr/lib/cni /opt/cni/bin}
dns_plugin() {  # prints "present" or the Debian package that provides the missing plugin
  local backend dirs binary package
  backend=$(podman info --format '{{.Host.NetworkBackend}}' 2>/dev/null || echo cni)
  if [ "$backend" = netavark ]; then
    dirs=$PODMAN_HELPER_DIRS binary=aardvark-dns package=aardvark-dns
  else
    dirs=$CNI_PLUGIN_DIRS binary=dnsname package=golang-github-containernetworking-plugin-dnsname
  fi
  for dir in $dirs; do
    if [ -x "$dir/$binary" ]; then echo present; return; fi
  done
  echo "$package"
}

ensure_dns() {
  local package
  package=$(dns_plugin)
  [ "$package" = present ] && return 0
  if [ "${COMPOSE_INSTALL_MISSING:-1}" = 1 ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    say "podman cannot resolve container names without its DNS plugin: installing $package"
    apt-get install -y -qq "$package" >&2 || apt-get update -qq && apt-get install -y -qq "$package" >&2 || true
    package=$(dns_plugin)
    if [ "$package" = present ]; then
      # networks made before the plugin was there lack it: the project's is made anew
      podman network rm -f "${COMPOSE_PROJECT_NAME}_default" >/dev/null 2>&1 || true
      return 0
    fi
  fi
  say "podman cannot resolve container names (the gateway could not reach triton): install the Debian package" \
    "$package (apt-get install $package), then run this again"
  exit 1
}

wait_ready() {
  local url="http://127.0.0.1:${GATEWAY_PORT}/ready" start=$SECONDS
  say "waiting for $url (up to ${WAIT_S} s)"
  # podman-compose ignores `condition: service_healthy` and podman 4 runs no healthchecks by itself, so the
  # wait is here: the gateway's /ready is 200 once Triton and its models are.
  until python3 -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=3)" "$url" 2>/dev/null; do
    if [ $((SECONDS - start)) -ge "$WAIT_S" ]; then
      say "the gateway is not ready after ${WAIT_S} s; the stack's last log lines:"
      "${COMPOSE[@]}" "${FILES[@]}" logs --tail 30 >&2 || true
      return 1
    fi
    sleep 2
  done
  say "ready in $((SECONDS - start)) s: http://127.0.0.1:${GATEWAY_PORT}/ ($ENGINE, $variant variant)"
}

command=${1:-up}
shift || true
case "$command" in
  engine)
    echo "$ENGINE"
    ;;
  dns)
    if [ "$ENGINE" = podman ]; then ensure_dns; fi
    say "containers resolve each other's names"
    ;;
  up)
    say "$ENGINE, $variant variant, project $COMPOSE_PROJECT_NAME"
    if [ "$ENGINE" = podman ]; then ensure_dns; fi
    if [ "$variant" = cpu ]; then "$ROOT/scripts/container-base-images.sh" "$ENGINE"; fi
    "${COMPOSE[@]}" "${FILES[@]}" up --build -d "$@"
    wait_ready
    ;;
  down)
    "${COMPOSE[@]}" "${FILES[@]}" down -v --remove-orphans "$@"
    # each rebuild leaves the previous build of the project's images untagged: remove those (only ours)
    "$ENGINE" image prune -f --filter "label=org.opencontainers.image.vendor=hf-audio-triton" >/dev/null
    ;;
  *)
    "${COMPOSE[@]}" "${FILES[@]}" "$command" "$@"
    ;;
esac
