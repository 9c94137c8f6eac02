#!/usr/bin/env bash
# Build a real Kubernetes control plane (kube-apiserver, kube-controller-manager, kube-scheduler) from
# Debian's packaged sources, for the `realcluster` test tier (tests/realcluster). The newest whole
# Kubernetes tree any registry this machine reaches ships is bookworm's source package `kubernetes`
# (1.20.5+really1.20.2, `vendor/` included; trixie's and sid's are cut down to kubectl). It builds with
# bullseye's Go 1.15 (later Go versions break its vendored modern-go/reflect2 at run time), through
# Kubernetes' own `make WHAT=...`, which also generates the one file the tarball lacks
# (pkg/generated/openapi/zz_generated.openapi.go). etcd comes from scripts/real_apiserver.sh.
#
#   scripts/real_cluster.sh            # idempotent: prints the binaries' paths when present
#   scripts/real_cluster.sh --check    # exit 0 if all are there, 1 if not (builds nothing)
#
# Output: .tools/cluster/{kube-apiserver,kube-controller-manager,kube-scheduler} (ignored by git). A
# machine-wide cache (GENFAB_TOOLS_CACHE, default ~/.cache/genfab) keeps a copy so a fresh clone on the
# same machine (CI) reuses it. Building needs root (mmdebstrap's root mode, a chroot with /proc), about
# 6 minutes on 2 cores (339 s measured) and 4 GB of temporary disk (GENFAB_BUILD_TMP, default /var/tmp);
# the binaries are static (CGO off) and run on bookworm.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=.tools/cluster
CACHE="${GENFAB_TOOLS_CACHE:-$HOME/.cache/genfab}/cluster"
BINS=(kube-apiserver kube-controller-manager kube-scheduler)

source scripts/cached_build.sh
echo "building kube-apiserver, kube-controller-manager and kube-scheduler 1.20 from Debian's sources" \
     "($MIRROR); about 6 minutes on 2 cores" >&2

STAGE=$(mktemp -d "${GENFAB_BUILD_TMP:-/var/tmp}/genfab-cluster.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
# What runs in the chroot: fetch and unpack the source (Debian's patches applied), then Kubernetes' own
# build. `providerless` leaves the cloud providers out; the GOPATH link is the layout the 1.20 build's
# code generators expect (as debian/rules makes it).
cat > "$STAGE/build.sh" <<'EOF'
set -eu
cd /tmp
apt-get source -qq kubernetes/bookworm >/dev/null
cd /tmp/kubernetes-*/
mkdir -p .go/src/k8s.io
ln -s ../../.. .go/src/k8s.io/kubernetes
export PATH=/usr/lib/go-1.15/bin:$PATH HOME=/tmp GOPATH=$PWD/.go CGO_ENABLED=0 KUBE_BUILD_PLATFORMS=linux/amd64
# No .git in a source package: the version the binaries report (and /version serves) is set here.
export KUBE_GIT_VERSION=v1.20.2 KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20 KUBE_GIT_TREE_STATE=clean
make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler" GOFLAGS="-tags=providerless" \
  GOLDFLAGS="-s -w" > /tmp/make.log 2>&1 || { tail -n 60 /tmp/make.log >&2; exit 1; }
mkdir -p /tmp/bin
for b in kube-apiserver kube-controller-manager kube-scheduler; do cp "_output/bin/$b" /tmp/bin/; done
EOF
# A throwaway bullseye root (format null: nothing is kept) with Go 1.15 and bookworm's source index.
mmdebstrap --variant=apt --format=null \
  --aptopt='Acquire::Check-Valid-Until "false"' \
  --include=golang-1.15-go,make,rsync,jq,dpkg-dev,ca-certificates,bash \
  --customize-hook="copy-in $STAGE/build.sh /tmp" \
  --customize-hook='chroot "$1" bash /tmp/build.sh' \
  --customize-hook="copy-out /tmp/bin $STAGE" \
  bullseye /dev/null "deb $MIRROR bullseye main" "deb-src $MIRROR bookworm main"

keep_built "$STAGE/bin"
