"""Export an encoder's transformer for ONNX Runtime, once, into the model's own directory (offline).

Why ONNX Runtime and what it gains: `knowledge.onnx_graph`, which reads the graph at run time.
scripts/setup.sh runs `python -m knowledge.training.onnx_export` for the models built at set-up,
and `crmbot faq tune` exports a shop-tuned one. The graph is exported with eager attention and
fused by ONNX Runtime's transformer optimiser, then stamped with what it was exported from
(`knowledge.onnx_graph.export_stamp`), so that a graph left from other weights is never used.
"""

import json
import logging
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Final

from knowledge.onnx_graph import GRAPH_DIR, GRAPH_FILE, GRAPH_STAMP, export_stamp, graph_path, is_exported
from knowledge.settings import BASE_MODEL_DIR, SERVICE_MODEL_DIR

logger = logging.getLogger(__name__)

OPSET: Final = 17


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
            json.dumps({**export_stamp(model_dir), "fused": fused}, indent=2) + "\n",
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
