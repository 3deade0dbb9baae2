#!/usr/bin/env bash
# Install the Debian packages the test suite needs, skipping those already installed.
# Idempotent: when everything is present it only runs dpkg queries (no apt-get at all).
set -euo pipefail

SYSTEM_PACKAGES="postgresql redis-server xmlsec1 poppler-utils softhsm2 opensc zbar-tools fonts-dejavu-core wrk chromium faketime"

cd "$(dirname "${BASH_SOURCE[0]}")/.."

is_installed() {
    dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed$'
}

missing=()
for pkg in $SYSTEM_PACKAGES; do
    if ! is_installed "$pkg"; then
        missing+=("$pkg")
    fi
done

# python3-venv only matters when we still have to create .venv and `python3 -m venv` fails.
if [[ ! -x .venv/bin/python ]] && ! is_installed python3-venv; then
    probe_dir="$(mktemp -d)"
    if ! "${MOTCUA_PYTHON:-python3}" -m venv "$probe_dir/venv" >/dev/null 2>&1; then
        missing+=("python3-venv")
    fi
    rm -rf "$probe_dir"
fi

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "System packages: all present."
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
    echo "ERROR: missing Debian packages: ${missing[*]}" >&2
    echo "Install them as root, then re-run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi

echo "Installing missing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update </dev/null
apt-get install -y --no-install-recommends "${missing[@]}" </dev/null
