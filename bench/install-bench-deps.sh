#!/usr/bin/env bash
# Benchmark-only Debian packages (NOT needed for build/test; scripts/install-deps.sh holds those).
# Idempotent: installs only what is missing. Services shipped by these packages (nginx, lighttpd)
# are kept from starting at install time: the benchmark runs its own instances on private ports.
set -euo pipefail

PACKAGES=(
  wrk               # HTTP load generator (Lua-scripted URL lists)
  iipimage-server   # reference IIIF tile server (FastCGI)
  lighttpd          # FastCGI front for iipsrv
  nginx-light       # reference static-file server for the API comparison
  time              # /usr/bin/time -v for the CLI reference's peak RSS
  libvips-tools     # vips / vipsthumbnail: inputs and the ingest reference
  linux-perf        # profiles when a target is missed (optional: the bench runs without it)
  curl python3
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

echo "install-bench-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Keep invoke-rc.d from starting nginx/lighttpd on :80 during installation.
policy_created=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  policy_created=1
fi
cleanup() { [ "$policy_created" = 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d; }
trap cleanup EXIT
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq || true
# linux-perf is optional (may be missing on some mirrors): install the rest even if it fails.
if ! $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
  rest=()
  for p in "${missing[@]}"; do [ "$p" != linux-perf ] && rest+=("$p"); done
  $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${rest[@]}" >/dev/null
fi
