"""Shared by the knowledge tests. Imported as a top-level module: tests/knowledge has no
`__init__.py`, which would make it a package named `knowledge` and shadow the real one."""

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"


def held_out_paraphrases() -> dict[str, Any]:
    """Paraphrases of the demo FAQs and out-of-domain questions that no tuning has seen."""
    data: dict[str, Any] = json.loads((DATA / "faq_heldout_paraphrases.json").read_text(encoding="utf-8"))
    return data
