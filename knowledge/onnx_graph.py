"""The encoder's transformer on ONNX Runtime, exported once into the model's own directory.

A customer's question is encoded while they wait. PyTorch runs the 12 small layers operator by
operator, and at 10–30 tokens its per-operator overhead is a large part of the time; ONNX Runtime
runs the same weights as one graph whose attention, LayerNorm and GELU are fused by its own
transformer optimiser (onnxruntime.transformers). On the two cores of an AMD EPYC without AMX, a
question took 8 ms (p50) against 24 ms in PyTorch float32 and 16 ms with bfloat16 weights, and
batches of FAQs 30–40 % less time; the vectors equal PyTorch's float32 ones (cosine ≥ 0.99999).

The graph is `onnx/transformer.onnx` in the model's directory. scripts/setup.sh exports it for the
models built at set-up, and `crmbot faq tune` for a shop-tuned one. SentenceEncoder uses it only
after checking, at load, that it gives the model's own vector for a probe question; a model without
a graph (KNOWLEDGE_MODEL, say) is encoded by sentence-transformers.
"""

import hashlib
import json
import logging
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from knowledge.model_build import STAMP_FILE
from knowledge.settings import BASE_MODEL_DIR, SERVICE_MODEL_DIR

logger = logging.getLogger(__name__)

GRAPH_DIR: Final = "onnx"
GRAPH_FILE: Final = "transformer.onnx"
# What the graph was exported from: the hashes of the model's own stamp file and of this code.
GRAPH_STAMP: Final = "exported-from.json"
OPSET: Final = 17
# Both cores of the machines this runs on: one question on two threads takes 8 ms (p50) against
# 13 ms on one. ONNX Runtime's threads spin briefly after each question, which made that 10 ms
# at p95 against 15 ms when spinning was turned off.
THREADS: Final = 2


def graph_path(model_dir: Path) -> Path:
    return model_dir / GRAPH_DIR / GRAPH_FILE


def _export_stamp(model_dir: Path) -> dict[str, str]:
    stamp = model_dir / STAMP_FILE
    return {
        "model_stamp_sha256": hashlib.sha256(stamp.read_bytes()).hexdigest() if stamp.is_file() else "",
        "code_sha256": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
    }


def is_exported(model_dir: Path) -> bool:
    stamp = model_dir / GRAPH_DIR / GRAPH_STAMP
    if not graph_path(model_dir).is_file() or not stamp.is_file():
        return False
    recorded = json.loads(stamp.read_text(encoding="utf-8"))
    return all(recorded.get(key) == value for key, value in _export_stamp(model_dir).items())


def export_graph(model_dir: Path) -> Path:
    """Export the transformer of the sentence-transformers model in `model_dir` (a BERT) to
    `onnx/transformer.onnx`, optimised for ONNX Runtime; written beside and renamed in."""
    import torch
    from onnxruntime.transformers.optimizer import optimize_model
    from sentence_transformers import SentenceTransformer

    # Eager attention exports as plain MatMul/Softmax, the pattern the optimiser fuses; the
    # default (scaled_dot_product_attention) exports in a form it does not recognise.
    model = SentenceTransformer(
        str(model_dir),
        device="cpu",
        local_files_only=True,
        model_kwargs={"attn_implementation": "eager"},
    )
    transformer: Any = model[0].model
    transformer.eval()
    config = transformer.config
    sample = model.tokenizer(["query: 我的订单什么时候到？"], return_tensors="pt")
    target_dir = model_dir / GRAPH_DIR
    with tempfile.TemporaryDirectory(dir=model_dir, prefix=".onnx-") as tmp:
        raw = Path(tmp) / "raw.onnx"
        # The tracer warns about every Python branch on a shape in transformers' masking code;
        # they compare the mask's length with the sequence's, which the tokenizer keeps equal
        # (padded batches too: tests/knowledge/test_encoder.py checks them against PyTorch).
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _last_hidden_state_module(transformer),
                (sample["input_ids"], sample["attention_mask"]),
                str(raw),
                input_names=["input_ids", "attention_mask"],
                output_names=["last_hidden_state"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "tokens"},
                    "attention_mask": {0: "batch", 1: "tokens"},
                    "last_hidden_state": {0: "batch", 1: "tokens"},
                },
                opset_version=OPSET,
                dynamo=False,
            )
        optimised = optimize_model(
            str(raw),
            model_type="bert",
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
            opt_level=1,
        )
        built = Path(tmp) / GRAPH_DIR
        built.mkdir()
        optimised.save_model_to_file(str(built / GRAPH_FILE))
        fused = {name: count for name, count in optimised.get_fused_operator_statistics().items() if count}
        (built / GRAPH_STAMP).write_text(
            json.dumps({**_export_stamp(model_dir), "fused": fused}, indent=2) + "\n",
            encoding="utf-8",
        )
        if target_dir.exists():
            shutil.rmtree(target_dir)
        built.rename(target_dir)
    logger.info("ONNX graph exported to %s (fused: %s)", target_dir, fused)
    return graph_path(model_dir)


def _last_hidden_state_module(transformer: Any) -> Any:
    """The transformer as a module taking (input_ids, attention_mask) by position, as the exporter
    passes them, and returning the hidden states alone."""
    import torch

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    return LastHiddenState()


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


def main() -> int:
    """Export the graphs of the models built at set-up, where missing or from older weights."""
    for model_dir in (BASE_MODEL_DIR, SERVICE_MODEL_DIR):
        if not (model_dir / "modules.json").is_file():
            continue
        if is_exported(model_dir):
            print(f"ONNX graph already exported: {graph_path(model_dir)}")
            continue
        print(f"exporting the transformer of {model_dir} for ONNX Runtime …")
        export_graph(model_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
