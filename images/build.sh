#!/usr/bin/env bash
# Build (and optionally push) genfab's images: the operator and one image per stage family.
#
#   images/build.sh --registry ghcr.io/lab --tag 0.1.0 [--push] [--platform linux/amd64] [--only scene]
#
# Images are named {registry}/genfab-{family}:{tag}, the names the chart's `stages.images` and the
# operator's GENFAB_IMAGE_<FAMILY> defaults use. The family list comes from genfab.api.families
# (FAMILIES), which every pipeline's stage declarations name. Build context: the repo root.
set -euo pipefail
cd "$(dirname "$0")/.."

REGISTRY="" TAG="" PUSH=0 PLATFORM="linux/amd64" ONLY="" ENGINE="${CONTAINER_ENGINE:-docker}"
usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --registry) REGISTRY="${2:?--registry needs a value}"; shift 2 ;;
    --tag) TAG="${2:?--tag needs a value}"; shift 2 ;;
    --platform) PLATFORM="${2:?--platform needs a value}"; shift 2 ;;
    --only) ONLY="${2:?--only needs a value}"; shift 2 ;;
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
        args = [f"EXTRA={extra}", f"SMOKE={smoke}"] + ([f"TORCH_VERSION={families.TORCH_VERSION}"] if torch else [])
        print(name, "images/stage/Dockerfile", *(shlex.quote(f"--build-arg={a}") for a in args))
    else:
        print(name, f"images/{name}/Dockerfile")
PY
)
while read -r name dockerfile buildargs; do
  [ -z "$ONLY" ] || [ "$ONLY" = "$name" ] || continue
  [ -f "$dockerfile" ] || { echo "$dockerfile missing for image $name" >&2; exit 1; }
  image="${REGISTRY%/}/genfab-$name:$TAG"
  echo "== $image"
  eval "set -- $buildargs"
  "$ENGINE" build --platform "$PLATFORM" -f "$dockerfile" "$@" -t "$image" \
    --label "org.opencontainers.image.version=$TAG" \
    --label "org.opencontainers.image.revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)" . </dev/null
  if [ "$PUSH" = 1 ]; then "$ENGINE" push "$image" </dev/null; fi
done <<< "$IMAGES"
