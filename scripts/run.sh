#!/usr/bin/env bash
# Start motcua-pay on the embedded profile (SQLite, no other service) with demo data.
# Extra arguments go to `motcua serve`, e.g. `bash scripts/run.sh --port 8080`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/venv.sh
source scripts/venv.sh
header "motcua demo"
.venv/bin/motcua demo
header "motcua serve $*"
exec .venv/bin/motcua serve "$@"
