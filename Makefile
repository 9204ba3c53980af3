# The two commands of the README:
#   make up    set up both environments, then run the assistant on the embedded default
#   make test  set up both environments and the tuned FAQ encoder, then run lint, types and the
#              whole test suite
.PHONY: up test setup envs train

# Environments and the FAQ encoder, tuned: what the tests rely on.
setup:
	@scripts/setup.sh

# Environments only: `crmbot up` builds the encoder beside the Rasa training and tunes it in the
# background once the assistant answers (crmbot/tuning_job.py), so the chat is up sooner.
envs:
	@scripts/setup.sh --envs-only

up: envs
	.venv-app/bin/crmbot up

test: setup
	scripts/test.sh

train: envs
	.venv-app/bin/crmbot train
