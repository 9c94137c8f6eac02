#!/usr/bin/env bash
# Build the research images. Build genfab-scene first (images/build.sh).
#   worldexplorer: SEVA on genfab-scene, then VGGT on top (one image for worldexplorer.seva.image and
#   worldexplorer.vggt.image): {registry}/genfab-worldexplorer-research:{tag}.
#   --moge: vistadream's MoGe on genfab-scene (vistadream.mogeImage): {registry}/genfab-moge:{tag}.
#   --difix3d: the lab's DiFix trainer (Difix3D's train_difix.py) on genfab-diffusion, for a TuningRun's
#   customStages[train].image: {registry}/genfab-difix3d:{tag}.
#
#   images/build-research.sh --registry ghcr.io/lab --tag 0.1.0 [--vggt-commit <sha>] [--seva-commit <sha>] [--push]
#   images/build-research.sh --registry ghcr.io/lab --tag 0.1.0 --moge [--moge-commit <sha>] [--push]
#   images/build-research.sh --registry ghcr.io/lab --tag 0.1.0 --difix3d [--difix3d-commit <sha>] [--push]
set -euo pipefail
cd "$(dirname "$0")/.."
REGISTRY="" TAG="" PUSH=0 VGGT_ARGS=() SEVA_ARGS=() MOGE=0 MOGE_ARGS=() DIFIX3D=0 DIFIX3D_ARGS=() ENGINE="${CONTAINER_ENGINE:-docker}"
usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --registry) REGISTRY="${2:?--registry needs a value}"; shift 2 ;;
    --tag) TAG="${2:?--tag needs a value}"; shift 2 ;;
    --vggt-commit) VGGT_ARGS=(--build-arg "VGGT_COMMIT=${2:?--vggt-commit needs a value}"); shift 2 ;;
    --seva-commit) SEVA_ARGS=(--build-arg "SEVA_COMMIT=${2:?--seva-commit needs a value}"); shift 2 ;;
    --moge) MOGE=1; shift ;;
    --moge-commit) MOGE=1; MOGE_ARGS=(--build-arg "MOGE_COMMIT=${2:?--moge-commit needs a value}"); shift 2 ;;
    --difix3d) DIFIX3D=1; shift ;;
    --difix3d-commit) DIFIX3D=1; DIFIX3D_ARGS=(--build-arg "DIFIX3D_COMMIT=${2:?--difix3d-commit needs a value}"); shift 2 ;;
    --push) PUSH=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "unknown argument: $1" >&2; usage 2 ;;
  esac
done
[ -n "$REGISTRY" ] && [ -n "$TAG" ] || { echo "--registry and --tag are required" >&2; usage 2; }
base="${REGISTRY%/}/genfab-scene:$TAG"
if [ "$DIFIX3D" = 1 ]; then
  difix3d="${REGISTRY%/}/genfab-difix3d:$TAG"
  "$ENGINE" build -f images/difix3d/Dockerfile --build-arg "BASE=${REGISTRY%/}/genfab-diffusion:$TAG" \
    "${DIFIX3D_ARGS[@]}" -t "$difix3d" images/difix3d
  if [ "$PUSH" = 1 ]; then "$ENGINE" push "$difix3d"; fi
  echo "$difix3d"
  exit 0
fi
if [ "$MOGE" = 1 ]; then
  moge="${REGISTRY%/}/genfab-moge:$TAG"
  "$ENGINE" build -f images/moge/Dockerfile --build-arg "BASE=$base" "${MOGE_ARGS[@]}" -t "$moge" images/moge
  if [ "$PUSH" = 1 ]; then "$ENGINE" push "$moge"; fi
  echo "$moge"
  exit 0
fi
seva="${REGISTRY%/}/genfab-seva:$TAG"
out="${REGISTRY%/}/genfab-worldexplorer-research:$TAG"
"$ENGINE" build -f images/seva/Dockerfile --build-arg "BASE=$base" "${SEVA_ARGS[@]}" -t "$seva" images/seva
"$ENGINE" build -f images/vggt/Dockerfile --build-arg "BASE=$seva" "${VGGT_ARGS[@]}" -t "$out" images/vggt
if [ "$PUSH" = 1 ]; then "$ENGINE" push "$seva"; "$ENGINE" push "$out"; fi
echo "$out"
