# The two set-up commands (README): `make run` and `make test`.
# Inner-loop targets (need .venv, which `make run` or `make test` creates):
#   make lint       ruff check, ruff format --check and the import-layer contracts
#   make fmt        ruff format, then ruff check --fix
#   make typecheck  mypy (strict)
VPY := .venv/bin/python

.PHONY: run test lint fmt typecheck
run:
	bash scripts/run.sh
test:
	bash scripts/test.sh
# lint runs all three even when one fails, then fails if any did (one pass shows everything).
lint:
	@rc=0; \
	$(VPY) -m ruff check . || rc=1; \
	$(VPY) -m ruff format --check . || rc=1; \
	.venv/bin/lint-imports --no-cache || rc=1; \
	exit $$rc
fmt:
	$(VPY) -m ruff format .
	$(VPY) -m ruff check --fix .
typecheck:
	$(VPY) -m mypy
