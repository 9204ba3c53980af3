"""The encoder's transformer on ONNX Runtime, read from the graph exported into the model's directory.

A customer's question is encoded while they wait. PyTorch runs the 12 small layers operator by
operator, and at 10–30 tokens its per-operator overhead is a large part of the time; ONNX Runtime
runs the same weights as one graph whose attention, LayerNorm and GELU are fused by its own
transformer optimiser (onnxruntime.transformers). On the two cores of an AMD EPYC without AMX, a
question took 8 ms (p50) against 24 ms in PyTorch float32 and 16 ms with bfloat16 weights, and
batches of FAQs 30–40 % less time; the vectors equal PyTorch's float32 ones (cosine ≥ 0.99999).

The graph is `onnx/transformer.onnx` in the model's directory, exported offline by
`knowledge.training.onnx_export` (scripts/setup.sh runs it for the models built at set-up, and
`crmbot faq tune` for a shop-tuned one). This module only reads it: SentenceEncoder uses it only
when its stamp shows it was exported from the model's current weights by the current exporter;
a model without a graph (KNOWLEDGE_MODEL, say) is encoded by sentence-transformers.
"""

import hashlib
import json
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from knowledge.model_files import STAMP_FILE

GRAPH_DIR: Final = "onnx"
GRAPH_FILE: Final = "transformer.onnx"
# What the graph was exported from: the hashes of the model's own stamp file and of the code.
GRAPH_STAMP: Final = "exported-from.json"
# Both cores of the machines this runs on: one question on two threads takes 8 ms (p50) against
# 13 ms on one. ONNX Runtime's threads spin briefly after each question, which made that 10 ms
# at p95 against 15 ms when spinning was turned off.
THREADS: Final = 2
# The code a graph depends on: this module, which feeds it, and the exporter, which wrote it. The
# exporter's file is read, never imported: searching needs none of the offline code.
_CODE_FILES: Final = (Path(__file__), Path(__file__).parent / "training" / "onnx_export.py")
# Earlier versions of that code that export and read the graph exactly as it does: the single
# knowledge/onnx_graph.py before its exporter moved to knowledge/training/ unchanged. A graph one
# of them stamped is current, so the move does not send searches to PyTorch until set-up exports
# the graphs again; a change to the export itself gives a hash not listed here.
_EQUIVALENT_CODE: Final = frozenset({"0d42959680a033a2e57c63f68d5735a937d9ef83782359ccf78da8dbe256cbfa"})


def graph_path(model_dir: Path) -> Path:
    """Where the model's exported graph is."""
    return model_dir / GRAPH_DIR / GRAPH_FILE


def export_stamp(model_dir: Path) -> dict[str, str]:
    """What a graph exported now from `model_dir` is stamped with: its model's stamp and the code."""
    stamp = model_dir / STAMP_FILE
    return {
        "model_stamp_sha256": hashlib.sha256(stamp.read_bytes()).hexdigest() if stamp.is_file() else "",
        "code_sha256": hashlib.sha256(b"".join(path.read_bytes() for path in _CODE_FILES)).hexdigest(),
    }


def is_exported(model_dir: Path) -> bool:
    """True when the model's graph was exported from its current weights by this code (or an
    equivalent earlier version of it)."""
    stamp = model_dir / GRAPH_DIR / GRAPH_STAMP
    if not graph_path(model_dir).is_file() or not stamp.is_file():
        return False
    recorded = json.loads(stamp.read_text(encoding="utf-8"))
    wanted = export_stamp(model_dir)
    if recorded.get("code_sha256") in _EQUIVALENT_CODE:
        wanted["code_sha256"] = recorded["code_sha256"]
    return all(recorded.get(key) == value for key, value in wanted.items())


class TransformerGraph:
    """An ONNX Runtime session of an exported transformer: token ids in, hidden states out."""

    def __init__(self, path: Path) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = THREADS
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def hidden_states(
        self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """The last hidden state of every token of a padded batch."""
        outputs = self._session.run(
            ["last_hidden_state"], {"input_ids": input_ids, "attention_mask": attention_mask}
        )
        return np.asarray(outputs[0], dtype=np.float32)


def load_graph(model_dir: Path) -> TransformerGraph | None:
    """The model's exported graph, or None where it has none (the caller uses PyTorch)."""
    path = graph_path(model_dir)
    if not path.is_file():
        return None
    return TransformerGraph(path)
