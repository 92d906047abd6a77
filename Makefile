# The two commands of the README, plus their parts.
#   make run    set up, then start every Sluice service with an embedded NATS and the example config
#   make test   set up, then lint, type-check and run the whole test suite
.PHONY: run test setup setup-test lint typecheck bench

run: setup
	cli/bin/sluice run $(ARGS)

test: setup-test
	npm test

setup:
	bash scripts/setup.sh run

setup-test:
	bash scripts/setup.sh test

lint:
	npm run lint

typecheck:
	npm run typecheck

bench: setup-test
	npm run bench
