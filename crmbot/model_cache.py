"""Trained models shared by every clone of the repository on one machine, keyed by their inputs.

A Rasa model of the demo company takes about 13 minutes to train on two cores, and the tuned FAQ
encoder about 10: a second clone (a branch checked out beside the first, CI's clean clone) would
pay both again for the very same files. Every model here is already named by a fingerprint of what
it was made from (Rasa: `crmbot.training.training_fingerprint`; the encoders: the stamps of
`knowledge.training`), so a copy kept under that name in a cache outside the clone
(`CRM_MODEL_CACHE_DIR`, default `~/.cache/xiaozhushou/models`) is exactly the model this clone
would make. After a fetch the callers still check the model the way they check their own (the
encoders' stamps and graph), so a stale or damaged cache entry is trained over, never served.

Entries are written under a temporary name and renamed into place, so a reader never sees half a
model, and two clones storing the same entry at once both succeed. Each kind keeps its newest
`KEEP_PER_KIND` entries (a tuned encoder is about a gigabyte with its ONNX graph).
"""

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Final

from crm_store.settings import get_stack_settings

__all__ = ["KEEP_PER_KIND", "fetch", "store"]

logger = logging.getLogger(__name__)

KEEP_PER_KIND: Final = 3


def _entry(kind: str, key: str) -> Path | None:
    root = get_stack_settings().model_cache_dir
    return root / kind / key if root is not None else None


def fetch(kind: str, key: str, target: Path) -> bool:
    """Copy the cached entry `kind/key` to `target` (a file or a directory); False when there is none.

    `target` must not exist. The copy is made beside it and renamed into place.
    """
    entry = _entry(kind, key)
    if entry is None or not entry.exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".from-cache-") as scratch:
        copy = Path(scratch) / target.name
        try:
            _copy(entry, copy)
        except OSError as error:
            logger.warning("模型缓存 %s/%s 无法读取（%s），将重新生成", kind, key, error)
            return False
        os.replace(copy, target)
    os.utime(entry)  # the newest-used entries are the ones kept
    logger.info("从模型缓存取用 %s/%s", kind, key)
    return True


def store(kind: str, key: str, source: Path) -> None:
    """Keep a copy of `source` as `kind/key`; a full disk or a read-only cache only costs a warning."""
    entry = _entry(kind, key)
    if entry is None or entry.exists():
        return
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=entry.parent, prefix=".storing-") as scratch:
            copy = Path(scratch) / key
            _copy(source, copy)
            try:
                os.replace(copy, entry)
            except OSError:
                if not entry.exists():  # another clone stored the same entry first: fine
                    raise
        _forget_old(entry.parent)
    except OSError as error:
        logger.warning("模型未能存入缓存 %s/%s（%s）", kind, key, error)


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy2(source, target)


def _forget_old(folder: Path) -> None:
    entries = sorted(
        (p for p in folder.iterdir() if not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in entries[KEEP_PER_KIND:]:
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
