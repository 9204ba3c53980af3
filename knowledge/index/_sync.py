"""Incremental update: the snapshot after FAQs were added, edited or removed, encoding only what changed.

Rows of touched FAQs are tombstoned and their phrasings appended as new rows, re-using the vector
of a text encoded before; once too many rows are dead, or the index outgrows its kind, the rows are
compacted into a fresh snapshot instead.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import faiss
import numpy as np

from knowledge.encoder import Encoder, Vectors
from knowledge.index._build import (
    build_snapshot,
    dense_kind,
    homophones_of,
    lexical_index,
    new_dense,
    text_rows,
)
from knowledge.index._snapshot import IndexConfig, Snapshot
from knowledge.text import lexical_tokens, normalise
from knowledge.types import FaqEntry

# Compact (rebuild without tombstones) once this share of rows is dead.
_MAX_TOMBSTONE_SHARE: Final = 0.25


@dataclass(frozen=True)
class SyncReport:
    """What one `FaqIndex.sync` changed, and how many texts it encoded."""

    added: int
    changed: int
    removed: int
    encoded: int

    @property
    def touched(self) -> bool:
        """True when any FAQ was added, changed or removed."""
        return bool(self.added or self.changed or self.removed)


def answer_vectors(
    encoder: Encoder, config: IndexConfig, current: Snapshot, wanted: Mapping[str, FaqEntry]
) -> tuple[dict[str, Vectors], int]:
    """Answer vectors for `wanted`, encoding only answers that are new or edited."""
    answers: dict[str, Vectors] = {}
    missing: list[str] = []
    if config.answer_weight <= 0:
        return answers, 0  # the score does not read answers, so they are not encoded
    for faq_id, entry in wanted.items():
        held = current.entries.get(faq_id)
        if faq_id in current.answers and held is not None and held.answer == entry.answer:
            answers[faq_id] = current.answers[faq_id]
        elif entry.answer.strip():
            missing.append(faq_id)
    if missing:
        vectors = encoder.encode([normalise(wanted[f].answer) for f in missing], passage=True)
        answers.update(zip(missing, vectors, strict=True))
    return answers, len(missing)


def apply_changes(
    encoder: Encoder,
    config: IndexConfig,
    current: Snapshot,
    wanted: Mapping[str, FaqEntry],
    touched: set[str],
) -> tuple[Snapshot, int]:
    """The snapshot holding `wanted`, where only the FAQs in `touched` differ from `current`,
    and how many phrasings were encoded (answer vectors are added by the caller)."""
    # Rows of touched FAQs die; their phrasings come back as new rows (re-using a vector
    # when the same text was encoded before, e.g. an edit that only changed the answer).
    row_faq = [None if faq in touched else faq for faq in current.row_faq]
    dead = sum(1 for faq in row_faq if faq is None)
    new_rows: list[tuple[str, str]] = [
        (fid, text) for fid in sorted(touched) if fid in wanted for text in wanted[fid].phrasings()
    ]
    reused = [current.row_of_text.get((normalise(text), "")) for _fid, text in new_rows]
    to_encode = [normalise(text) for (_fid, text), row in zip(new_rows, reused, strict=True) if row is None]
    fresh = encoder.encode(to_encode)
    parts: list[Vectors] = []
    fresh_at = 0
    for row in reused:
        if row is None:
            parts.append(fresh[fresh_at : fresh_at + 1])
            fresh_at += 1
        else:
            parts.append(current.vectors[row : row + 1])
    added_vectors = np.vstack(parts) if parts else np.zeros((0, current.vectors.shape[1]), np.float32)

    total = len(row_faq) + len(new_rows)
    live_after = total - dead
    kind = dense_kind(config, live_after)
    if dead > _MAX_TOMBSTONE_SHARE * max(total, 1) or kind != current.kind:
        compacted = _compacted(encoder, config, wanted, current, row_faq, new_rows, added_vectors)
        return compacted, len(to_encode)

    dense = (
        faiss.clone_index(current.dense)
        if current.dense.ntotal
        else new_dense(kind, encoder.dimension, config)
    )
    if added_vectors.shape[0]:
        dense.add(added_vectors)
    row_faq_all = tuple(row_faq) + tuple(fid for fid, _ in new_rows)
    row_text = current.row_text + tuple(text for _, text in new_rows)
    row_tokens = current.row_tokens + tuple(lexical_tokens(text) for _, text in new_rows)
    vectors = np.vstack([current.vectors, added_vectors])
    lexical, lexical_rows = lexical_index(row_tokens, row_faq_all)
    homophones = homophones_of(row_tokens, row_faq_all)
    row_of_text = dict(current.row_of_text)
    row_of_text.update(text_rows(row_text[len(current.row_text) :], first_row=len(current.row_text)))
    return (
        Snapshot(
            entries=dict(wanted),
            row_faq=row_faq_all,
            row_text=row_text,
            vectors=vectors,
            dense=dense,
            lexical=lexical,
            lexical_rows=lexical_rows,
            dead_rows=dead,
            kind=kind,
            row_of_text=row_of_text,
            row_tokens=row_tokens,
            homophones=homophones,
            crowding=(
                current.crowding.after_update(vectors, row_faq_all, dense)
                if config.crowding_weight > 0
                else current.crowding
            ),
        ),
        len(to_encode),
    )


def _compacted(
    encoder: Encoder,
    config: IndexConfig,
    wanted: Mapping[str, FaqEntry],
    current: Snapshot,
    row_faq: Sequence[str | None],
    new_rows: Sequence[tuple[str, str]],
    added_vectors: Vectors,
) -> Snapshot:
    keep = [row for row, faq in enumerate(row_faq) if faq is not None]
    vectors = np.vstack([current.vectors[keep], added_vectors]) if keep else added_vectors
    faqs = tuple(row_faq[row] for row in keep) + tuple(fid for fid, _ in new_rows)
    texts = tuple(current.row_text[row] for row in keep) + tuple(text for _, text in new_rows)
    tokens = tuple(current.row_tokens[row] for row in keep) + tuple(lexical_tokens(t) for _, t in new_rows)
    return build_snapshot(
        config,
        encoder.dimension,
        wanted,
        faqs,
        texts,
        np.ascontiguousarray(vectors, dtype=np.float32),
        row_tokens=tokens,
    )
