# The two commands of the README:
#   make up    set up both environments, then run the assistant on the embedded default
#   make test  set up both environments, then run lint, types and the whole test suite
.PHONY: up test setup train

setup:
	@scripts/setup.sh

up: setup
	.venv-app/bin/crmbot up

test: setup
	scripts/test.sh

train: setup
	.venv-app/bin/crmbot train
