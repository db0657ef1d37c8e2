#!/usr/bin/env bash
# Make sure a headless Chromium is installed for the GraphiQL browser test (Debian/Ubuntu
# package `chromium`). Installs it with apt-get when it is missing and this shell may (root, or
# passwordless sudo); otherwise prints exactly what to install and exits 1.
# Exit status: 0 when chromium (or chromium-browser) is there afterwards, 1 when not.
set -euo pipefail

have() {
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1
}

if have; then
    echo "Chromium: present"
    exit 0
fi

as_root=""
can_install=false
if [[ "$(id -u)" -eq 0 ]]; then
    can_install=true
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root="sudo -n"
    can_install=true
fi

if command -v apt-get >/dev/null 2>&1 && "$can_install"; then
    echo "Installing chromium with apt-get ..."
    # shellcheck disable=SC2086  # the prefix is meant to split
    if $as_root apt-get update -qq \
        && $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
        && have; then
        echo "Chromium: installed"
        exit 0
    fi
    echo "apt-get could not install chromium." >&2
fi

cat >&2 <<MESSAGE
Chromium is missing; the GraphiQL browser test needs it. Install it, then run the tests again:
  Debian / Ubuntu:  sudo apt-get update && sudo apt-get install -y chromium
  elsewhere:        a Chromium or Chrome build on PATH as chromium
MESSAGE
exit 1
