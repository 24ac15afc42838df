#!/usr/bin/env bash
# A real browser for the viewer's tests: Debian's chromium package, installed when missing.
#
# Usage: scripts/chromium.sh     prints the path of a headless-capable Chromium on its last line.
#
# Exit codes: 0 ok (path printed); 3 Chromium cannot be had here (the caller decides whether
# that means "skip" or "fail"). Set CHROMIUM_PATH to use a browser of your own.
set -euo pipefail

log() { echo "chromium.sh: $*" >&2; }
# Loud on purpose: skipped browser tests must be visible in the test output.
cannot_install() {
  {
    echo "################################################################"
    echo "## chromium.sh: Chromium is NOT available on this machine."
    echo "## $*"
    echo "## The web viewer's browser tests cannot run."
    echo "################################################################"
  } >&2
  exit 3
}

find_browser() {
  local candidate
  for candidate in "${CHROMIUM_PATH:-}" /usr/bin/chromium /usr/bin/chromium-browser \
    /usr/lib/chromium/chromium; do
    if [[ -n "$candidate" && -x "$candidate" ]]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

if path="$(find_browser)"; then
  echo "$path"
  exit 0
fi
if [[ "$(id -u)" != "0" ]]; then
  cannot_install "It is not installed and installing it needs root (apt-get install -y chromium)."
fi
if ! command -v apt-get >/dev/null 2>&1; then
  cannot_install "It is not installed and there is no apt-get to install it with."
fi
log "installing Debian's chromium package (apt-get)"
if ! { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2; }; then
  cannot_install "apt-get install -y chromium failed."
fi
if path="$(find_browser)"; then
  echo "$path"
  exit 0
fi
cannot_install "The chromium package installed no binary where expected."
