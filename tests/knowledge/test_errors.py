"""The knowledge base's errors: one base to catch, and each leaf still the built-in error it was."""

import pytest

from knowledge import errors
from knowledge.encoder import EncoderUnavailable as EncoderUnavailableFromEncoder
from knowledge.errors import (
    CrowdingNotKept,
    EncoderUnavailable,
    EvalSetError,
    KnowledgeError,
    KnowledgeUnavailable,
    TuningError,
)


@pytest.mark.parametrize(
    ("leaf", "builtin"),
    [
        (EncoderUnavailable, RuntimeError),
        (KnowledgeUnavailable, RuntimeError),
        (TuningError, RuntimeError),
        (EvalSetError, ValueError),
        (CrowdingNotKept, ValueError),
    ],
)
def test_each_leaf_is_a_knowledge_error_and_its_old_builtin(
    leaf: type[Exception], builtin: type[Exception]
) -> None:
    assert issubclass(leaf, KnowledgeError)
    assert issubclass(leaf, builtin)


def test_the_module_exports_its_errors_and_the_encoder_still_offers_its_own() -> None:
    assert {name for name in vars(errors) if not name.startswith("_")} == set(errors.__all__)
    assert EncoderUnavailableFromEncoder is EncoderUnavailable
