"""`rasa run` with the project's fixes to Rasa 3.6 applied first (Rasa environment).

crmbot/stack.py starts each Rasa server as `python -m bot.rasa_server run …` instead of
`rasa run …`; the arguments are Rasa's own. Training and `rasa test` run Rasa unchanged.

Each fix keeps Rasa's behaviour and is here because bench/turn_cost.py measured it on Rasa's one
thread, which is what limits a Rasa server's turns a second (docs/benchmarks.md):

- **A custom action's response is checked with a validator compiled once.** Rasa 3.6 checks every
  response of the action server with `jsonschema.validate`, which first validates Rasa's schema
  itself against the JSON Schema meta-schema and compiles a new validator: about 15 ms of CPU per
  action call, for the same schema every time. Here the schema is checked and compiled once, and
  each response raises the same error `jsonschema.validate` would (`best_match` of its errors).
"""

import sys
from functools import cache
from typing import Any

from jsonschema import ValidationError, exceptions, validators
from rasa.core.actions.action import RemoteAction
from rasa.shared.constants import DOCS_BASE_URL


@cache
def _action_response_validator() -> Any:
    schema = RemoteAction.action_response_format_spec()
    validator_class = validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def _validate_action_result(_action: RemoteAction, result: dict[str, Any]) -> bool:
    """`RemoteAction._validate_action_result` of Rasa 3.6.21, with the validator compiled once."""
    error = exceptions.best_match(_action_response_validator().iter_errors(result))
    if error is None:
        return True
    assert isinstance(error, ValidationError)
    error.message += (
        f". Failed to validate Action server response from API, "
        f"make sure your response from the Action endpoint is valid. "
        f"For more information about the format visit "
        f"{DOCS_BASE_URL}/custom-actions"
    )
    raise error


def apply_fixes() -> None:
    RemoteAction._validate_action_result = _validate_action_result  # type: ignore[method-assign]


if __name__ == "__main__":
    apply_fixes()
    from rasa.__main__ import main

    sys.exit(main())
