# Sourced by the scripts that build a test tier's binaries from Debian's sources (real_apiserver.sh,
# real_cluster.sh): with OUT (the clone's folder), CACHE (the machine-wide copy) and BINS (the binaries)
# set, it exits 0 printing their paths when they are there or in the cache (copied in), answers --check,
# and otherwise returns for the caller to build, after checking it runs as root with mmdebstrap and setting
# MIRROR. `keep_built DIR` checks each binary built in DIR runs, then puts it in the cache and OUT.
have() { local d="$1" b; for b in "${BINS[@]}"; do [ -x "$d/$b" ] || return 1; done; }
report() { local b; for b in "${BINS[@]}"; do echo "$PWD/$OUT/$b"; done; }

if [ "${1:-}" = "--check" ]; then have "$OUT"; exit $?; fi
if have "$OUT"; then report; exit 0; fi
mkdir -p "$OUT"
if have "$CACHE"; then
  for b in "${BINS[@]}"; do cp "$CACHE/$b" "$OUT/$b.partial" && mv "$OUT/$b.partial" "$OUT/$b"; done
  report; exit 0
fi

[ "$(id -u)" -eq 0 ] || { echo "$(basename "$0"): building needs root (mmdebstrap root mode and a chroot)" >&2; exit 1; }
if ! command -v mmdebstrap >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
fi
# The Debian mirror this machine's apt already uses (deb822 URIs: or a one-line deb entry).
MIRROR=$(bash scripts/debian_mirror.sh)

keep_built() {
  local dir="$1" b
  mkdir -p "$CACHE"
  for b in "${BINS[@]}"; do
    "$dir/$b" --version >/dev/null 2>&1 || "$dir/$b" --help >/dev/null 2>&1 \
      || { echo "$(basename "$0"): the built $b does not run on this machine" >&2; exit 1; }
    cp "$dir/$b" "$CACHE/$b.partial" && mv "$CACHE/$b.partial" "$CACHE/$b"
    cp "$dir/$b" "$OUT/$b.partial" && mv "$OUT/$b.partial" "$OUT/$b"
  done
  report
}
