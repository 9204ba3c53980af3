"""NLU quality on the held-out file that no training sees (tests/bot/nlu_heldout.yml).

    .venv-app/bin/python -m bench.nlu_heldout

Trains on the demo company if the model is not cached, runs `rasa test nlu`, prints intent and
entity figures, and writes bench/results/nlu_heldout.md.
"""

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench.results_table import report
from crm_store.db import create_engine_for
from crmbot import paths
from crmbot.preparation import prepare_model, prepare_store
from crmbot.training import rasa_environment

HELD_OUT = paths.PROJECT_ROOT / "tests" / "bot" / "nlu_heldout.yml"
REGEX_ENTITIES = ("order_id", "ticket_id", "phone")


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_engine_for(f"sqlite:///{scratch}/demo.db")
        prepare_store(engine, load_demo=True)
        model = prepare_model(engine)
        engine.dispose()

    out = paths.VAR_DIR / "bench" / "nlu_heldout"
    subprocess.run(
        [
            str(paths.RASA_BIN),
            "test",
            "nlu",
            "--nlu",
            str(HELD_OUT),
            "--model",
            str(model),
            "--out",
            str(out),
        ],
        cwd=paths.PROJECT_ROOT,
        env=rasa_environment(),
        check=True,
        capture_output=True,
    )
    intents = _load(out / "intent_report.json")
    entities = _load(out / "DIETClassifier_report.json")
    regex_entities = _load(out / "RegexEntityExtractor_report.json")

    rows: list[list[object]] = [
        ["intent macro-F1", _fmt(intents["macro avg"]["f1-score"])],
        ["intent accuracy", _fmt(intents["accuracy"])],
        ["intent weighted-F1", _fmt(intents["weighted avg"]["f1-score"])],
        ["examples", intents["macro avg"]["support"]],
    ]
    if entities:
        rows.append(["entity macro-F1 (DIET, all entities)", _fmt(entities["macro avg"]["f1-score"])])
    # The regex extractor only knows the fixed-shape ids; its macro average over every entity
    # type would count the others as misses, so report the ones it is responsible for.
    for entity in REGEX_ENTITIES:
        if entity in regex_entities:
            scores = regex_entities[entity]
            rows.append(
                [f"entity F1 {entity} (regex)", f"{_fmt(scores['f1-score'])} (n={scores['support']})"]
            )
    for entity, scores in sorted(entities.items()):
        if isinstance(scores, dict) and not entity.endswith("avg") and entity not in REGEX_ENTITIES:
            rows.append([f"entity F1 {entity} (DIET)", f"{_fmt(scores['f1-score'])} (n={scores['support']})"])
    per_intent = [
        (label, scores)
        for label, scores in intents.items()
        if isinstance(scores, dict) and not label.endswith("avg")
    ]
    for label, scores in sorted(per_intent, key=lambda item: item[1]["f1-score"])[:5]:
        rows.append([f"weakest: {label}", f"F1 {_fmt(scores['f1-score'])} (n={scores['support']})"])
    path = report(
        "nlu_heldout",
        "NLU on the held-out file (tests/bot/nlu_heldout.yml)",
        ["metric", "value"],
        rows,
        note=f"Model {model.name}; command: `.venv-app/bin/python -m bench.nlu_heldout`.",
    )
    print(f"written to {path}")


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _fmt(value: float) -> str:
    return f"{value:.3f}"


if __name__ == "__main__":
    main()
