"""`FaqIndex`: the searchable FAQs of one process, whose snapshot is swapped, never changed in place."""

import logging
import threading
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from knowledge.encoder import Encoder, Vectors
from knowledge.index._build import build_snapshot, empty_snapshot
from knowledge.index._persistence import read_saved, save_snapshot
from knowledge.index._ranking import ScoredFaq, rank_question
from knowledge.index._snapshot import IndexConfig, Snapshot
from knowledge.index._sync import SyncReport, answer_vectors, apply_changes
from knowledge.text import MAX_QUERY_CHARS, normalise
from knowledge.types import FaqEntry

logger = logging.getLogger(__name__)


class FaqIndex:
    """The searchable FAQs of one process. `search` never blocks on `sync`."""

    def __init__(self, encoder: Encoder, config: IndexConfig | None = None) -> None:
        self.encoder = encoder
        self.config = config or IndexConfig()
        self._write_lock = threading.Lock()
        self._snapshot = empty_snapshot(self.config, encoder.dimension)

    # -- reading ---------------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        """The current snapshot; a caller that holds it reads one consistent state."""
        return self._snapshot

    def __len__(self) -> int:
        return len(self._snapshot.entries)

    def rank(self, query: str, top_k: int = 5) -> list[ScoredFaq]:
        """The best `top_k` FAQs for `query`, best first (empty for a query without a letter,
        digit or character, or an empty index)."""
        snapshot = self._snapshot
        text = normalise(query)[:MAX_QUERY_CHARS]
        # Only punctuation, symbols or emoji ("？？？", "😀😂") ask nothing: their vectors still
        # land near some FAQ, and a suggestion would be a guess.
        if not any(character.isalnum() for character in text) or not snapshot.entries or top_k <= 0:
            return []
        reading: tuple[str, Vectors] | None = None
        corrected = snapshot.homophones.correct(text)
        if corrected == text:
            vectors = self.encoder.encode([text])
        else:
            # One batch for both texts: cheaper than a second encoder call.
            vectors = self.encoder.encode([text, corrected])
            reading = (corrected, vectors[1])
        config = self.config
        return rank_question(
            snapshot,
            (text, vectors[0]),
            reading,
            top_k,
            config.dense_weight,
            config.answer_weight,
            config.crowding_weight,
        )

    # -- writing ---------------------------------------------------------------------------

    def sync(self, entries: Iterable[FaqEntry]) -> SyncReport:
        """Make the index hold exactly `entries`, encoding only phrasings it has not seen."""
        wanted = {entry.faq_id: entry for entry in entries}
        with self._write_lock:
            current = self._snapshot
            added = [fid for fid in wanted if fid not in current.entries]
            removed = [fid for fid in current.entries if fid not in wanted]
            changed = [
                fid for fid in wanted if fid in current.entries and current.entries[fid] != wanted[fid]
            ]
            if not (added or removed or changed):
                return SyncReport(0, 0, 0, 0)
            snapshot, encoded = apply_changes(
                self.encoder, self.config, current, wanted, set(added) | set(changed) | set(removed)
            )
            answers, answers_encoded = answer_vectors(self.encoder, self.config, current, wanted)
            self._snapshot = replace(snapshot, answers=answers)
            encoded += answers_encoded
        logger.info(
            "knowledge index updated: %d added, %d changed, %d removed, %d phrasings encoded",
            len(added),
            len(changed),
            len(removed),
            encoded,
        )
        return SyncReport(len(added), len(changed), len(removed), encoded)

    # -- persistence -----------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write the index to `directory` atomically (a reader sees the old or the new one)."""
        save_snapshot(self._snapshot, directory, self.encoder, self.config)

    def load(self, directory: Path) -> bool:
        """Replace the index with the one saved in `directory`; False if absent or not ours."""
        saved = read_saved(directory, self.encoder, self.config)
        if saved is None:
            return False
        with self._write_lock:
            snapshot = build_snapshot(
                self.config,
                self.encoder.dimension,
                saved.entries,
                saved.row_faq,
                saved.row_text,
                saved.vectors,
                saved.dense,
                saved_crowding=saved.crowding,
            )
            self._snapshot = replace(snapshot, answers=saved.answers)
        return True
