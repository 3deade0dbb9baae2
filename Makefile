# The two set-up commands (README): `make run` and `make test`.
.PHONY: run test
run:
	bash scripts/run.sh
test:
	bash scripts/test.sh
