"""Saving a snapshot under `var/knowledge/` and reading it back, so that a restart re-encodes nothing.

A saved index is a directory of JSON and `.npy` files (never pickles) with a manifest naming the
format and the encoder's model id: an index saved by other weights is not read. It is written
beside the old one and swapped in, so a reader sees one or the other.
"""

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import faiss
import numpy as np

from knowledge.crowding import Crowding
from knowledge.encoder import Encoder, Vectors
from knowledge.index._build import dense_kind
from knowledge.index._snapshot import IndexConfig, Snapshot
from knowledge.types import FaqEntry

logger = logging.getLogger(__name__)

_FORMAT_VERSION: Final = 2


def save_snapshot(snapshot: Snapshot, directory: Path, encoder: Encoder, config: IndexConfig) -> None:
    """Write `snapshot`'s live rows to `directory` atomically (a reader sees the old or the new one)."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory.parent, prefix=f".{directory.name}-") as tmp:
        work = Path(tmp) / "index"
        work.mkdir()
        live = [row for row, faq in enumerate(snapshot.row_faq) if faq is not None]
        np.save(work / "vectors.npy", snapshot.vectors[live])
        answer_ids = sorted(snapshot.answers)
        np.save(
            work / "answers.npy",
            np.vstack([snapshot.answers[f] for f in answer_ids])
            if answer_ids
            else np.zeros((0, encoder.dimension), dtype=np.float32),
        )
        (work / "answers.json").write_text(json.dumps(answer_ids), encoding="utf-8")
        rows = [{"faq_id": snapshot.row_faq[row], "text": snapshot.row_text[row]} for row in live]
        entries = [
            {
                "faq_id": e.faq_id,
                "question": e.question,
                "answer": e.answer,
                "alt_questions": list(e.alt_questions),
                "category": e.category,
            }
            for e in snapshot.entries.values()
        ]
        manifest = {
            "format": _FORMAT_VERSION,
            "model": encoder.model_id,
            "dimension": encoder.dimension,
            "kind": dense_kind(config, len(live)),
        }
        (work / "rows.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
        (work / "faqs.json").write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
        if manifest["kind"] == "hnsw" and snapshot.dead_rows == 0 and snapshot.kind == "hnsw":
            faiss.write_index(snapshot.dense, str(work / "dense.faiss"))
        if len(snapshot.crowding.penalty) == len(snapshot.row_faq):
            neighbours, similarities = snapshot.crowding.lists_to_save(live)
            np.save(work / "crowding_neighbours.npy", neighbours)
            np.save(work / "crowding_similarities.npy", similarities)
        (work / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        old = directory.with_name(f".{directory.name}.old")
        if directory.exists():
            os.replace(directory, old)
        os.replace(work, directory)
        if old.exists():
            shutil.rmtree(old, ignore_errors=True)


@dataclass(frozen=True)
class SavedIndex:
    """What a saved index holds, ready to be built into a snapshot."""

    entries: dict[str, FaqEntry]
    row_faq: tuple[str | None, ...]
    row_text: tuple[str, ...]
    vectors: Vectors
    dense: faiss.Index | None
    crowding: Crowding | None
    answers: dict[str, Vectors]


def read_saved(directory: Path, encoder: Encoder, config: IndexConfig) -> SavedIndex | None:
    """The index saved in `directory`; None if absent, unreadable, inconsistent or not ours.

    Not ours: another format or another encoder's model id, or (when the score reads answers)
    answer vectors missing for a FAQ with an answer.
    """
    if not (directory / "manifest.json").is_file():
        return None
    try:
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("format") != _FORMAT_VERSION or manifest.get("model") != encoder.model_id:
            return None
        rows = json.loads((directory / "rows.json").read_text(encoding="utf-8"))
        faqs = json.loads((directory / "faqs.json").read_text(encoding="utf-8"))
        vectors = np.load(directory / "vectors.npy").astype(np.float32, copy=False)
        answer_ids = json.loads((directory / "answers.json").read_text(encoding="utf-8"))
        answer_vectors = np.load(directory / "answers.npy").astype(np.float32, copy=False)
        dense_file = directory / "dense.faiss"
        dense = faiss.read_index(str(dense_file)) if dense_file.exists() else None
        crowding = _saved_crowding(directory) if config.crowding_weight > 0 else None
    except (OSError, ValueError, KeyError) as exc:
        logger.warning(
            "persisted knowledge index at %s not usable (%s); rebuilding", directory, type(exc).__name__
        )
        return None
    if len(rows) != len(vectors) or len(answer_ids) != len(answer_vectors):
        logger.warning("persisted knowledge index at %s is inconsistent; rebuilding", directory)
        return None
    entries = {
        f["faq_id"]: FaqEntry(
            faq_id=f["faq_id"],
            question=f["question"],
            answer=f["answer"],
            alt_questions=tuple(f["alt_questions"]),
            category=f.get("category"),
        )
        for f in faqs
    }
    answered = {faq_id for faq_id, entry in entries.items() if entry.answer.strip()}
    if config.answer_weight > 0 and not answered <= set(answer_ids):
        logger.info("persisted knowledge index at %s has no answer vectors; rebuilding", directory)
        return None
    return SavedIndex(
        entries=entries,
        row_faq=tuple(r["faq_id"] for r in rows),
        row_text=tuple(r["text"] for r in rows),
        vectors=np.ascontiguousarray(vectors),
        dense=dense,
        crowding=crowding,
        answers=dict(zip(answer_ids, answer_vectors, strict=True)),
    )


def _saved_crowding(directory: Path) -> Crowding | None:
    neighbours_file = directory / "crowding_neighbours.npy"
    if not neighbours_file.exists():
        return None
    neighbours = np.load(neighbours_file).astype(np.int64, copy=False)
    similarities = np.load(directory / "crowding_similarities.npy").astype(np.float32, copy=False)
    if neighbours.shape != similarities.shape:
        return None
    return Crowding.of_saved(neighbours, similarities)
