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
- **TED is asked only when its answer can win.** Rasa runs every policy for each of a turn's two
  or three predictions, and TED, a transformer run by TensorFlow, costs most of it. The ensemble
  keeps the prediction of highest confidence, a tie going to the policy of higher priority, and a
  prediction that continues a form or loop without the user ("no user" prediction) overrules all
  others. So when the rule or memoization policy predicts an action with confidence 1.0, or makes
  a no-user prediction, TED's prediction cannot change the outcome: the other policies run first
  and TED only when none of them is certain; the ensemble then combines what it would have
  combined. This holds while TED has the lowest priority and cannot predict from a message's text
  (end-to-end stories overrule the other policies); otherwise, and for any other graph of
  policies, Rasa's own path runs. tests/e2e/test_rasa_server_fixes.py replays the dialogue test
  stories and compares every prediction with Rasa's.
- **The model's graph runs without dask.** Rasa hands each run of its graph (the NLU once a turn,
  the policies at each prediction) to dask's synchronous scheduler, whose bookkeeping (ordering
  the tasks, queues, callbacks) cost about 6 % of Rasa's thread for a graph of a dozen nodes run
  one after the other on that same thread. Here each run calls the same nodes with the same inputs
  directly, every node once, its dependencies first; the error it raises is Rasa's.
"""

import sys
import weakref
from dataclasses import dataclass
from functools import cache
from typing import Any

from jsonschema import ValidationError, exceptions, validators
from rasa.core.actions.action import RemoteAction
from rasa.core.policies.ensemble import DefaultPolicyPredictionEnsemble
from rasa.core.policies.policy import Policy, PolicyPrediction
from rasa.core.policies.ted_policy import TEDPolicy
from rasa.core.processor import MessageProcessor
from rasa.engine.constants import PLACEHOLDER_TRACKER
from rasa.engine.exceptions import GraphRunError
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.shared.constants import DOCS_BASE_URL
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, ActionExecutionRejected
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import TEXT


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


@dataclass(frozen=True)
class PolicyOrder:
    """The policies of a model's prediction graph: the cheap ones first, TED if they are unsure."""

    policy_nodes: tuple[str, ...]  # in the order the ensemble receives their predictions
    ted_node: str
    ted_priority: int
    ensemble: DefaultPolicyPredictionEnsemble


_POLICY_ORDERS: "weakref.WeakKeyDictionary[DaskGraphRunner, PolicyOrder | None]" = weakref.WeakKeyDictionary()
_rasa_predict_next_with_tracker = MessageProcessor._predict_next_with_tracker


def policy_order(processor: MessageProcessor) -> PolicyOrder | None:
    """How this model's policies can run TED last, or None where Rasa's own path must run."""
    runner = processor.graph_runner
    if not isinstance(runner, DaskGraphRunner):
        return None
    if runner not in _POLICY_ORDERS:
        _POLICY_ORDERS[runner] = _policy_order(runner, processor.model_metadata.core_target)
    return _POLICY_ORDERS[runner]


def _policy_order(runner: DaskGraphRunner, target: str | None) -> PolicyOrder | None:
    schema, nodes = runner._graph_schema, runner._instantiated_nodes
    ensemble_node = schema.nodes.get(target or "")
    if (
        ensemble_node is None
        or not issubclass(ensemble_node.uses, DefaultPolicyPredictionEnsemble)
        or ensemble_node.fn != "combine_predictions_from_kwargs"
    ):
        return None
    policy_nodes = tuple(
        name
        for name in ensemble_node.needs.values()
        if name in schema.nodes and issubclass(schema.nodes[name].uses, Policy)
    )
    components = {name: nodes[name]._component for name in (*policy_nodes, target or "")}
    # TEDPolicy exactly (UnexpecTEDIntentPolicy derives from it and adds events of its own).
    teds = [name for name in policy_nodes if schema.nodes[name].uses is TEDPolicy]
    if len(teds) != 1 or len(policy_nodes) < 2 or any(c is None for c in components.values()):
        return None
    if any(nodes[name]._hooks for name in components):  # e.g. `rasa test`'s recorders
        return None
    ted = components[teds[0]]
    others = [components[name] for name in policy_nodes if name != teds[0]]
    assert isinstance(ted, TEDPolicy)
    if TEXT in getattr(ted, "fake_features", {}) or any(
        not isinstance(policy, Policy) or policy.priority <= ted.priority for policy in others
    ):
        return None
    ensemble = components[target or ""]
    assert isinstance(ensemble, DefaultPolicyPredictionEnsemble)
    return PolicyOrder(policy_nodes, teds[0], ted.priority, ensemble)


def certain_without_ted(
    predictions: list[PolicyPrediction], tracker: DialogueStateTracker, domain: Domain, ted_priority: int
) -> bool:
    """Whether the ensemble's choice among these predictions stands whatever TED predicts.

    TED's prediction is never a no-user one and, without text features, never end-to-end; its
    confidence is at most 1.0 and its priority lower than these policies'. The ensemble first sets
    the confidence of an action the tracker just rejected to 0 in every prediction, as here.
    """
    if any(p.is_end_to_end_prediction for p in predictions):
        return False
    if any(p.is_no_user_prediction for p in predictions):
        return True
    rejected = _rejected_action_index(tracker, domain)
    for prediction in predictions:
        confidences = list(prediction.probabilities)
        if rejected is not None and rejected < len(confidences):
            confidences[rejected] = 0.0
        if prediction.policy_priority > ted_priority and max(confidences, default=0.0) >= 1.0:
            return True
    return False


def _rejected_action_index(tracker: DialogueStateTracker, domain: Domain) -> int | None:
    # As DefaultPolicyPredictionEnsemble._best_policy_prediction finds it.
    for event in reversed(tracker.events):
        if isinstance(event, ActionExecutionRejected):
            return domain.index_for_action(event.action_name)
        if isinstance(event, ActionExecuted):
            return None
    return None


def _predict_next_with_tracker(
    processor: MessageProcessor, tracker: DialogueStateTracker
) -> PolicyPrediction:
    """`MessageProcessor._predict_next_with_tracker` of Rasa 3.6.21, running TED only if it can win."""
    order = policy_order(processor)
    if order is None or tracker.followup_action:
        return _rasa_predict_next_with_tracker(processor, tracker)
    others = [name for name in order.policy_nodes if name != order.ted_node]
    inputs = {PLACEHOLDER_TRACKER: tracker}
    results = processor.graph_runner.run(inputs=inputs, targets=others)
    cheap = [results[name] for name in others]
    if not certain_without_ted(cheap, tracker, processor.domain, order.ted_priority):
        results.update(processor.graph_runner.run(inputs=inputs, targets=[order.ted_node]))
    predictions = [results[name] for name in order.policy_nodes if name in results]
    return order.ensemble.combine_predictions(predictions, tracker, processor.domain)


def run_graph(
    runner: DaskGraphRunner, inputs: dict[str, Any] | None = None, targets: list[str] | None = None
) -> dict[str, Any]:
    """`DaskGraphRunner.run` of Rasa 3.6.21, calling the nodes itself instead of through `dask.get`.

    As with dask, an input reaches a node as `(name, value)`, a node's output as `(node, output)`,
    and a name that is neither reaches it as the bare name (the node then warns, as it does).
    """
    schema, nodes = runner._graph_schema, runner._instantiated_nodes
    results: dict[str, Any] = {}
    for name, value in (inputs or {}).items():
        # An input takes the place of a node of its name, as in dask's graph; a string value naming a
        # node is refused, as Rasa refuses it (dask would have read it as that node's output).
        if isinstance(value, str) and value in schema.nodes:
            raise GraphRunError(
                f"Input value '{value}' clashes with a node name. Make sure that none of the input names "
                f"passed to the `run` method are the same as node names in the graph schema."
            )
        results[name] = (name, value)

    def output_of(name: str) -> Any:
        if name not in results:
            if name not in schema.nodes:
                return name
            needs = [output_of(dependency) for dependency in schema.nodes[name].needs.values()]
            results[name] = nodes[name](*needs)
        return results[name]

    try:
        return dict(output_of(target) for target in targets or schema.target_names)
    except RuntimeError as error:
        raise GraphRunError("Error running runner.") from error


def apply_fixes() -> None:
    RemoteAction._validate_action_result = _validate_action_result  # type: ignore[method-assign]
    MessageProcessor._predict_next_with_tracker = _predict_next_with_tracker  # type: ignore[method-assign]
    DaskGraphRunner.run = run_graph  # type: ignore[assignment]


if __name__ == "__main__":
    apply_fixes()
    from rasa.__main__ import main

    sys.exit(main())
