#!/usr/bin/env bash
# Build Kubernetes' own CRD API server (k8s.io/apiextensions-apiserver, the code kube-apiserver embeds
# to serve CustomResourceDefinitions) and etcd from Debian's packaged sources, for the `realserver`
# test tier (tests/realserver). No registry ships kube-apiserver, k3s, kind or envtest here; Debian
# packages the apiextensions-apiserver Go sources (golang-k8s-apiextensions-apiserver-dev) and etcd.
#
#   scripts/real_apiserver.sh            # idempotent: prints the two binaries' paths when present
#   scripts/real_apiserver.sh --check    # exit 0 if both binaries are there, 1 if not (builds nothing)
#
# Output: .tools/apiserver/{apiextensions-apiserver,etcd} (ignored by git). A machine-wide cache
# (GENFAB_TOOLS_CACHE, default ~/.cache/genfab) keeps a copy so a fresh clone on the same machine
# (CI) reuses it. Building needs root (mmdebstrap's root mode, a chroot with /proc), about 6 minutes
# and 3 GB of temporary disk on 2 cores; the binaries (≈110 MB and ≈25 MB) are static and run on
# bookworm.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=.tools/apiserver
CACHE="${GENFAB_TOOLS_CACHE:-$HOME/.cache/genfab}/apiserver"
BINS=(apiextensions-apiserver etcd)

source scripts/cached_build.sh
echo "building apiextensions-apiserver and etcd from Debian sid's sources ($MIRROR); about 6 minutes" >&2

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
# A throwaway sid root (format null: nothing is kept) with Go, the packaged Kubernetes sources and
# etcd; the customize hooks build in the chroot (mmdebstrap mounts /proc, /sys and /dev there) and
# copy the two binaries out.
mmdebstrap --variant=apt --format=null \
  --aptopt='Acquire::Check-Valid-Until "false"' \
  --include=golang-go,golang-k8s-apiextensions-apiserver-dev,etcd-server,ca-certificates \
  --customize-hook='chroot "$1" sh -ec "cd /tmp && GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS=-trimpath CGO_ENABLED=0 go build -o /tmp/apiextensions-apiserver k8s.io/apiextensions-apiserver"' \
  --customize-hook="copy-out /tmp/apiextensions-apiserver $STAGE" \
  --customize-hook="copy-out /usr/bin/etcd $STAGE" \
  sid /dev/null "deb $MIRROR sid main"

keep_built "$STAGE"
