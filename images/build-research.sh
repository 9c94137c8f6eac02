#!/usr/bin/env bash
# Build worldexplorer's research image: SEVA on genfab-scene, then VGGT on top (one image for
# worldexplorer.seva.image and worldexplorer.vggt.image). Build genfab-scene first (images/build.sh).
#
#   images/build-research.sh --registry ghcr.io/lab --tag 0.1.0 --vggt-commit <sha> [--seva-commit <sha>] [--push]
#
# Result: {registry}/genfab-worldexplorer-research:{tag}.
set -euo pipefail
cd "$(dirname "$0")/.."
REGISTRY="" TAG="" PUSH=0 VGGT_COMMIT="" SEVA_ARGS=() ENGINE="${CONTAINER_ENGINE:-docker}"
usage() { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --registry) REGISTRY="${2:?--registry needs a value}"; shift 2 ;;
    --tag) TAG="${2:?--tag needs a value}"; shift 2 ;;
    --vggt-commit) VGGT_COMMIT="${2:?--vggt-commit needs a value}"; shift 2 ;;
    --seva-commit) SEVA_ARGS=(--build-arg "SEVA_COMMIT=${2:?--seva-commit needs a value}"); shift 2 ;;
    --push) PUSH=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "unknown argument: $1" >&2; usage 2 ;;
  esac
done
[ -n "$REGISTRY" ] && [ -n "$TAG" ] && [ -n "$VGGT_COMMIT" ] || { echo "--registry, --tag and --vggt-commit are required" >&2; usage 2; }
base="${REGISTRY%/}/genfab-scene:$TAG"
seva="${REGISTRY%/}/genfab-seva:$TAG"
out="${REGISTRY%/}/genfab-worldexplorer-research:$TAG"
"$ENGINE" build -f images/seva/Dockerfile --build-arg "BASE=$base" "${SEVA_ARGS[@]}" -t "$seva" images/seva
"$ENGINE" build -f images/vggt/Dockerfile --build-arg "BASE=$seva" --build-arg "VGGT_COMMIT=$VGGT_COMMIT" -t "$out" images/vggt
if [ "$PUSH" = 1 ]; then "$ENGINE" push "$seva"; "$ENGINE" push "$out"; fi
echo "$out"
