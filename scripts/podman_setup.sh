#!/usr/bin/env bash
# Make this machine able to build and run genfab's images with podman, offline from any container
# registry: podman + runc from Debian, a containers.conf for this kernel, and the Dockerfiles' base
# image (python:3.11.14-slim-bookworm) made locally with mmdebstrap instead of pulled.
#
#   scripts/podman_setup.sh          # idempotent; prints `export CONTAINERS_CONF=...` for the shell
#   eval "$(scripts/podman_setup.sh)" && CONTAINER_ENGINE=podman images/build.sh --registry localhost/genfab --tag dev --only cv
#
# Facts of these machines it encodes (docs/operate/install.md, "Building the images yourself"):
# - crun fails on this kernel's hybrid cgroups: runtime = "runc".
# - podman's default ulimits exceed the host's hard limits: nofile/nproc are set within them.
# - pip inside a build needs this machine's CA bundle: the base carries the host's extra CAs
#   (/usr/local/share/ca-certificates), as a lab's base image would carry its proxy's CA.
# - The base is Debian bookworm's own Python 3.11 (minbase + python3, venv, ca-certificates, passwd),
#   tagged with the name the Dockerfiles' FROM lines use, so images/build.sh runs unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=docker.io/library/python:3.11.14-slim-bookworm
CONF="$PWD/.tools/podman/containers.conf"
SUDO=$([ "$(id -u)" -eq 0 ] || echo "sudo -n")

need=()
for tool in podman runc mmdebstrap; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} from Debian" >&2
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq podman runc mmdebstrap uidmap >/dev/null
fi

mkdir -p "$(dirname "$CONF")"
cat > "$CONF" <<CONF
# Written by scripts/podman_setup.sh for this machine.
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF="$CONF"

if ! podman image exists "$BASE"; then
  echo "making $BASE with mmdebstrap (Debian bookworm, Python 3.11); about a minute" >&2
  MIRROR=$(bash scripts/debian_mirror.sh)
  tarball=$(mktemp --suffix=.tar)
  trap 'rm -f "$tarball"' EXIT
  hooks=()
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    hooks+=(--customize-hook='for c in /usr/local/share/ca-certificates/*.crt; do cp "$c" "$1/usr/local/share/ca-certificates/"; done'
            --customize-hook='chroot "$1" update-ca-certificates >/dev/null')
  fi
  $SUDO mmdebstrap --variant=minbase --format=tar \
    --include=python3,python3-venv,python-is-python3,ca-certificates,passwd \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
    "${hooks[@]}" bookworm "$tarball" "$MIRROR" >&2
  podman import --change 'CMD ["python3"]' --change 'ENV LANG=C.UTF-8' "$tarball" "$BASE" >/dev/null
  echo "made $BASE ($(podman image inspect --format '{{.Size}}' "$BASE") bytes)" >&2
fi
echo "export CONTAINERS_CONF=$CONF"
