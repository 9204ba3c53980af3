"""Set-up exports a model's transformer for ONNX Runtime again whenever the model changes."""

import json
from pathlib import Path

from knowledge import onnx_graph
from knowledge.model_files import STAMP_FILE
from knowledge.settings import SERVICE_MODEL_DIR


def test_the_graph_built_at_set_up_is_current() -> None:
    assert onnx_graph.is_exported(SERVICE_MODEL_DIR)
    stamp = json.loads((SERVICE_MODEL_DIR / onnx_graph.GRAPH_DIR / onnx_graph.GRAPH_STAMP).read_text())
    # The optimiser fused every layer's attention, so the graph runs as fast as it was measured.
    assert stamp["fused"]["Attention"] == 12


def test_a_retuned_model_needs_a_new_export(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / onnx_graph.GRAPH_DIR).mkdir(parents=True)
    (model / STAMP_FILE).write_text('{"corpus_sha256": "a"}', encoding="utf-8")
    onnx_graph.graph_path(model).write_bytes(b"graph")
    (model / onnx_graph.GRAPH_DIR / onnx_graph.GRAPH_STAMP).write_text(
        json.dumps(onnx_graph.export_stamp(model)), encoding="utf-8"
    )
    assert onnx_graph.is_exported(model)

    (model / STAMP_FILE).write_text('{"corpus_sha256": "b"}', encoding="utf-8")  # tuned again
    assert not onnx_graph.is_exported(model)


def test_a_graph_from_other_export_code_needs_a_new_export_unless_that_code_was_equivalent(
    tmp_path: Path,
) -> None:
    model = tmp_path / "model"
    (model / onnx_graph.GRAPH_DIR).mkdir(parents=True)
    (model / STAMP_FILE).write_text('{"corpus_sha256": "a"}', encoding="utf-8")
    onnx_graph.graph_path(model).write_bytes(b"graph")
    stamp = model / onnx_graph.GRAPH_DIR / onnx_graph.GRAPH_STAMP

    stamp.write_text(
        json.dumps({**onnx_graph.export_stamp(model), "code_sha256": "0" * 64}), encoding="utf-8"
    )
    assert not onnx_graph.is_exported(model)

    # knowledge/onnx_graph.py as it was before its exporter moved to knowledge/training/.
    before_the_move = "0d42959680a033a2e57c63f68d5735a937d9ef83782359ccf78da8dbe256cbfa"
    stamp.write_text(
        json.dumps({**onnx_graph.export_stamp(model), "code_sha256": before_the_move}), encoding="utf-8"
    )
    assert onnx_graph.is_exported(model)
