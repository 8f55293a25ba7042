#!/usr/bin/env bash
# Installs GeoLink and what it needs beyond pip on a fresh Debian/Ubuntu machine:
# Mesa's EGL (headless OpenGL for the synthetic renderer) and Chromium (web-page test).
# Safe to re-run: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")"

debs=(libegl1 libegl-mesa0 libgl1-mesa-dri libgles2)
if [ "${GEOLINK_WITH_BROWSER:-1}" = 1 ]; then debs+=(chromium chromium-driver); fi
missing=()
if command -v dpkg >/dev/null 2>&1; then
  for d in "${debs[@]}"; do dpkg -s "$d" >/dev/null 2>&1 || missing+=("$d"); done
fi
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "setup.sh: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
    || echo "setup.sh: warning: could not install ${missing[*]}; GL/browser tests will skip with the reason" >&2
fi

python3 -m pip install -q -e ".[all]"
