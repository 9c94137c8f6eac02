#!/usr/bin/env bash
# Build (and optionally push) genfab's images: the operator and one image per stage family.
#
#   images/build.sh --registry ghcr.io/lab --tag 0.1.0 [--push] [--platform linux/amd64] [--only scene]
#                   [--torch-index URL] [--build-arg KEY=VALUE ...]
#
# Images are named {registry}/genfab-{family}:{tag}, the names the chart's `stages.images` and the
# operator's GENFAB_IMAGE_<FAMILY> defaults use. The family list comes from genfab.api.families
# (FAMILIES), which every pipeline's stage declarations name. Build context: the repo root.
# The torch images take torch from PyPI unless --torch-index names another index (a lab mirror, or
# https://download.pytorch.org/whl/cu128); --build-arg passes on to every image built (scene's
# CUDA_DEVEL_IMAGE: a lab's mirror of the CUDA devel image). CONTAINER_ENGINE=podman builds with podman
# (scripts/podman_setup.sh prepares a machine with no registry access).
set -euo pipefail
cd "$(dirname "$0")/.."

REGISTRY="" TAG="" PUSH=0 PLATFORM="linux/amd64" ONLY="" TORCH_INDEX="" EXTRA_ARGS=() ENGINE="${CONTAINER_ENGINE:-docker}"
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --registry) REGISTRY="${2:?--registry needs a value}"; shift 2 ;;
    --tag) TAG="${2:?--tag needs a value}"; shift 2 ;;
    --platform) PLATFORM="${2:?--platform needs a value}"; shift 2 ;;
    --only) ONLY="${2:?--only needs a value}"; shift 2 ;;
    --torch-index) TORCH_INDEX="${2:?--torch-index needs a value}"; shift 2 ;;
    --build-arg) EXTRA_ARGS+=("--build-arg=${2:?--build-arg needs KEY=VALUE}"); shift 2 ;;
    --push) PUSH=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "unknown argument: $1" >&2; usage 2 ;;
  esac
done
[ -n "$REGISTRY" ] && [ -n "$TAG" ] || { echo "--registry and --tag are required" >&2; usage 2; }

# The families module needs only the standard library: load it by path, no install required.
# One line per image: name, Dockerfile, then build arguments (the template's extra/smoke/torch).
IMAGES=$(python3 - <<'PY'
import importlib.util, shlex, sys
spec = importlib.util.spec_from_file_location("families", "operator/genfab/api/families.py")
families = sys.modules["families"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(families)
for name in ("operator", *families.FAMILIES):
    if name in families.TEMPLATE_IMAGES:
        extra, smoke, torch = families.TEMPLATE_IMAGES[name]
        torch_args = [f"TORCH_VERSION={families.TORCH_VERSION}", f"TORCHAO_VERSION={families.TORCHAO_VERSION}"]
        args = [f"EXTRA={extra}", f"SMOKE={smoke}", f"LOCK=requirements/images/{name}.txt"] + (torch_args if torch else [])
        print(name, "images/stage/Dockerfile", "torch" if torch else "-",
              *(shlex.quote(f"--build-arg={a}") for a in args))
    else:
        print(name, f"images/{name}/Dockerfile", "torch" if name == "scene" else "-")
PY
)
while read -r name dockerfile uses_torch buildargs; do
  [ -z "$ONLY" ] || [ "$ONLY" = "$name" ] || continue
  [ -f "$dockerfile" ] || { echo "$dockerfile missing for image $name" >&2; exit 1; }
  image="${REGISTRY%/}/genfab-$name:$TAG"
  echo "== $image"
  eval "set -- $buildargs"
  if [ -n "$TORCH_INDEX" ] && [ "$uses_torch" = torch ]; then set -- "$@" "--build-arg=TORCH_INDEX=$TORCH_INDEX"; fi
  set -- "$@" ${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"}
  "$ENGINE" build --platform "$PLATFORM" -f "$dockerfile" "$@" -t "$image" \
    --label "org.opencontainers.image.version=$TAG" \
    --label "org.opencontainers.image.revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)" . </dev/null
  if [ "$PUSH" = 1 ]; then "$ENGINE" push "$image" </dev/null; fi
  BUILT=1
done <<< "$IMAGES"
if [ -z "${BUILT:-}" ]; then
  echo "--only $ONLY: no such image (one of: $(cut -d' ' -f1 <<< "$IMAGES" | tr '\n' ' '))" >&2; exit 2
fi
