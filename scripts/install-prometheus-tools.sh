#!/usr/bin/env bash
# Make sure the Prometheus tools the tests run are installed: promtool, prometheus, amtool and
# alertmanager (Debian/Ubuntu packages `prometheus` and `prometheus-alertmanager`).
#
# Installs them with apt-get when they are missing and this shell may (root, or passwordless
# sudo, on a system with apt-get). Otherwise prints exactly what to install and exits 1.
# Exit status: 0 when every tool is there afterwards, 1 when not.
set -euo pipefail

# tool name -> the Debian package that ships it. Debian names the Alertmanager binary
# prometheus-alertmanager; upstream release archives call it alertmanager.
declare -A PACKAGE_OF=(
    [promtool]=prometheus
    [prometheus]=prometheus
    [amtool]=prometheus-alertmanager
    [alertmanager]=prometheus-alertmanager
)

have() {
    case "$1" in
        alertmanager) command -v alertmanager >/dev/null 2>&1 \
            || command -v prometheus-alertmanager >/dev/null 2>&1 ;;
        *) command -v "$1" >/dev/null 2>&1 ;;
    esac
}

missing_packages() {
    local tool packages=()
    for tool in promtool prometheus amtool alertmanager; do
        have "$tool" || packages+=("${PACKAGE_OF[$tool]}")
    done
    # unique, in a stable order
    printf '%s\n' "${packages[@]}" | awk 'NF && !seen[$0]++' | tr '\n' ' '
}

report_missing() {
    local missing="$1"
    cat >&2 <<MESSAGE
The Prometheus tools the tests need are missing (promtool, prometheus, amtool, alertmanager).
Install them, then run the tests again:
  Debian / Ubuntu:  sudo apt-get update && sudo apt-get install -y ${missing% }
  elsewhere:        the release archives of prometheus and alertmanager from
                    https://prometheus.io/download/ on PATH (the binaries promtool,
                    prometheus, amtool and alertmanager)
MESSAGE
}

missing="$(missing_packages)"
if [[ -z "${missing// /}" ]]; then
    echo "Prometheus tools: all present ($(promtool --version 2>&1 | head -n 1))"
    exit 0
fi

# Root installs directly; anyone else only with passwordless sudo (never a prompt in CI).
as_root=""
can_install=false
if [[ "$(id -u)" -eq 0 ]]; then
    can_install=true
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root="sudo -n"
    can_install=true
fi

if command -v apt-get >/dev/null 2>&1 && "$can_install"; then
    echo "Installing ${missing% } with apt-get ..."
    # shellcheck disable=SC2086  # the prefix and the package list are meant to split
    if $as_root apt-get update -qq \
        && $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing; then
        missing="$(missing_packages)"
        if [[ -z "${missing// /}" ]]; then
            echo "Prometheus tools: installed ($(promtool --version 2>&1 | head -n 1))"
            exit 0
        fi
    fi
    echo "apt-get could not install every tool." >&2
fi

report_missing "$missing"
exit 1
