#!/usr/bin/env bash
# One command for the whole suite: system packages, .venv, lint, type check, tests.
# Extra arguments are passed to pytest, e.g. `bash scripts/test.sh tests/test_infra_servers.py -x`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

printf '\n==> System packages\n'
MOTCUA_PYTHON="$(command -v python3.11 || command -v python3)"
export MOTCUA_PYTHON
bash scripts/ensure_system_packages.sh

# shellcheck source=scripts/venv.sh
source scripts/venv.sh

header "ruff check ."
"$VPY" -m ruff check .

header "mypy"
"$VPY" -m mypy

pytest_args=()
if [[ "${CI:-}" == "true" ]]; then
    pytest_args+=(-p no:cacheprovider)
fi

header "pytest ${pytest_args[*]:-} $*"
exec "$VPY" -m pytest "${pytest_args[@]}" "$@"
