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

header "ruff check . and ruff format --check ."
"$VPY" -m ruff check .
"$VPY" -m ruff format --check .

header "mypy"
"$VPY" -m mypy

header "lint-imports (layers: api > reconciliation > payments > einvoice > signing > settings)"
# The import-linter contracts in pyproject.toml: every arrow points down, nothing imports api.
# --no-cache: the graph takes well under a second to build and the cache folder would litter.
"$VENV/bin/lint-imports" --no-cache

header "pip-audit (installed packages against PyPI's advisory data)"
# Fails on any known vulnerability. When packages could not be audited (no advisory data
# reachable: this build machine's PyPI mirror has no per-version JSON and osv.dev is out of
# reach, and pip-audit would then say "No known vulnerabilities" having checked nothing) it
# prints a loud DEPENDENCY AUDIT INCOMPLETE banner and carries on; MOTCUA_PIP_AUDIT=strict
# makes that a failure too, for machines that can reach the advisory service.
audit_json="$(mktemp)"
set +e
"$VPY" -m pip_audit --local --skip-editable --progress-spinner off -f json -o "$audit_json"
audit_rc=$?
set -e
set +e
"$VPY" - "$audit_json" "$audit_rc" <<'PY'
import json
import sys

path, rc = sys.argv[1], int(sys.argv[2])
try:
    with open(path, encoding="utf-8") as fh:
        deps = json.load(fh)["dependencies"]
except (OSError, ValueError, KeyError) as exc:
    print(f"pip-audit produced no report (exit {rc}): {exc}")
    sys.exit(2)
vulnerable = [d for d in deps if d.get("vulns")]
skipped = [d for d in deps if "skip_reason" in d]
audited = len(deps) - len(skipped)
for dep in vulnerable:
    for vuln in dep["vulns"]:
        fixes = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
        print(f"VULNERABLE {dep['name']} {dep.get('version')}: {vuln['id']} (fixed in {fixes})")
print(f"pip-audit: {audited} package(s) audited, {len(vulnerable)} vulnerable, {len(skipped)} not audited")
if vulnerable or rc not in (0, 1):
    sys.exit(1)
if skipped:
    for dep in skipped[:10]:
        print(f"NOT AUDITED {dep['name']}: {dep['skip_reason']}")
    print("!!! DEPENDENCY AUDIT INCOMPLETE: the vulnerability service could not be used !!!")
    sys.exit(3)
PY
audit_result=$?
set -e
rm -f "$audit_json"
if [[ $audit_result -eq 3 && "${MOTCUA_PIP_AUDIT:-}" != "strict" ]]; then
    printf 'WARNING: dependency audit incomplete (set MOTCUA_PIP_AUDIT=strict to fail); see above\n'
elif [[ $audit_result -ne 0 ]]; then
    exit "$audit_result"
fi

pytest_args=()
if [[ "${CI:-}" == "true" ]]; then
    pytest_args+=(-p no:cacheprovider)
fi
# Two pytest-xdist workers (this machine has two cores); each starts its own PostgreSQL and
# Redis. MOTCUA_TEST_WORKERS=0 runs in one process.
workers="${MOTCUA_TEST_WORKERS:-2}"
if [[ "$workers" != "0" ]]; then
    pytest_args+=(-n "$workers" --dist loadfile)
fi

# Moved clocks (issue 12): the suite again with the process clock moved to the go-live night
# and other awkward moments (tests/infra/clock.py). short (default for a bare `make test`): the
# `calendar` subset on SQLite at each moment; long: every test but the fault suite, on both
# databases, at each moment; off (default when pytest arguments are given).
moved="${MOTCUA_MOVED_CLOCKS:-}"
if [[ -z "$moved" ]]; then
    if [[ $# -eq 0 ]]; then moved=short; else moved=off; fi
fi
moments=(new-year-eve new-year month-end sunday)
case "$moved" in
    short) moved_select=(-m "calendar and not postgres") ;;
    long) moved_select=(-m "not faults") ;;
    off) moved_select=() ;;
    *) echo "MOTCUA_MOVED_CLOCKS must be short, long or off (got '$moved')" >&2; exit 2 ;;
esac

header "pytest ${pytest_args[*]:-} $*"
if [[ "$moved" == "off" ]]; then
    exec "$VPY" -m pytest "${pytest_args[@]}" "$@"
fi
"$VPY" -m pytest "${pytest_args[@]}" "$@"
if [[ "$moved" == "short" ]]; then
    # One run: each calendar test once per moment (ids end in [new-year-eve] ...).
    all_moments="$(IFS=,; echo "${moments[*]}")"
    header "pytest --clock=$all_moments ${moved_select[*]} (moved clocks, short form)"
    "$VPY" -m pytest "${pytest_args[@]}" --clock="$all_moments" "${moved_select[@]}" "$@"
else
    # One run per moment, so session fixtures and module-level values are made in it too.
    for moment in "${moments[@]}"; do
        header "pytest --clock=$moment ${moved_select[*]} (moved clock, long form)"
        "$VPY" -m pytest "${pytest_args[@]}" --clock="$moment" "${moved_select[@]}" "$@"
    done
fi
