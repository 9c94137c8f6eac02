#!/usr/bin/env bash
# Print the Debian mirror this machine's apt already uses (deb822 `URIs:` or a one-line `deb` entry),
# for mmdebstrap in scripts/real_apiserver.sh and scripts/podman_setup.sh. GENFAB_DEBIAN_MIRROR wins;
# with neither, Debian's own redirector.
set -euo pipefail
found=$(grep -rhoE '^(URIs:[[:space:]]*|deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)https?://[^[:space:]]+/debian/?' \
          /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | head -n1 | grep -oE 'https?://[^[:space:]]+' || true)
echo "${GENFAB_DEBIAN_MIRROR:-${found:-http://deb.debian.org/debian}}"
