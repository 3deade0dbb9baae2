#!/usr/bin/env bash
# Sourced by run.sh and test.sh: make .venv (Python 3.11+) and install the project into it,
# re-installing only when pyproject.toml (or the interpreter) changed. Sets VPY.
set -euo pipefail

header() {
    printf '\n==> %s\n' "$*"
}

pick_python() {
    if command -v python3.11 >/dev/null 2>&1; then
        echo python3.11
    elif command -v python3 >/dev/null 2>&1 \
        && python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
        echo python3
    else
        echo "ERROR: Python 3.11+ not found (need python3.11 or python3 >= 3.11)" >&2
        return 1
    fi
}

PYTHON="$(pick_python)"
export MOTCUA_PYTHON="$PYTHON"

VENV=.venv
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    header "Creating $VENV with $PYTHON"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

STAMP="$VENV/.motcua-installed"
want_hash="$( (sha256sum pyproject.toml; "$VPY" -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)"
if [[ ! -f "$STAMP" ]] || [[ "$(cat "$STAMP")" != "$want_hash" ]]; then
    header "pip install -e '.[dev]'"
    "$VPY" -m pip install -q -e '.[dev]'
    echo "$want_hash" >"$STAMP"
else
    echo "Python packages: up to date (pyproject.toml unchanged)."
fi

