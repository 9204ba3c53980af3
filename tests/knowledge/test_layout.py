"""Searching never loads the offline model work: no runtime module imports `knowledge.training`."""

import subprocess
import sys

RUNTIME_MODULES = [
    "knowledge.crowding",
    "knowledge.decision",
    "knowledge.encoder",
    "knowledge.errors",
    "knowledge.evaluation",
    "knowledge.holder",
    "knowledge.homophones",
    "knowledge.index",
    "knowledge.model_files",
    "knowledge.onnx_graph",
    "knowledge.questions",
    "knowledge.service",
    "knowledge.text",
    "knowledge.types",
]


def test_the_runtime_imports_no_training_code() -> None:
    # A fresh interpreter: this test session may have imported the training modules already.
    code = (
        "import importlib, sys\n"
        f"for name in {RUNTIME_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(n for n in sys.modules if n.startswith('knowledge.training')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert done.stdout.strip() == "[]"
