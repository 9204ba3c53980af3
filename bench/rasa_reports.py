"""Running Rasa's evaluation commands and reading the reports they write, for the NLU benchmarks."""

import json
import subprocess
from pathlib import Path
from typing import Any

from crmbot import paths
from crmbot.training import rasa_environment

Report = dict[str, Any]


def run_rasa(*args: str, cache: str | None = None) -> None:
    """Run a Rasa command of the bot environment; stop the benchmark with Rasa's error if it fails."""
    env = rasa_environment()
    if cache is not None:
        env["RASA_CACHE_DIRECTORY"] = cache
    done = subprocess.run(
        [str(paths.rasa_bin()), *args], cwd=paths.PROJECT_ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"rasa {' '.join(args[:2])} failed:\n{done.stderr[-3000:]}")


def load_report(path: Path) -> Report:
    """A `rasa test nlu` report (intent_report.json, <Extractor>_report.json), or {} if not written."""
    if not path.exists():
        return {}
    data: Report = json.loads(path.read_text(encoding="utf-8"))
    return data


def fmt(value: float) -> str:
    return f"{value:.3f}"


def score_cell(scores: Report) -> str:
    return f"{fmt(scores['f1-score'])} (n={scores['support']})"


def per_label(report: Report) -> list[tuple[str, Report]]:
    """The per-intent (or per-entity) rows of a report, without its averages and accuracy."""
    return [
        (label, scores)
        for label, scores in report.items()
        if isinstance(scores, dict) and not label.endswith("avg")
    ]


def weakest(report: Report, how_many: int) -> list[list[object]]:
    """Table rows for the labels with the lowest F1."""
    ranked = sorted(per_label(report), key=lambda item: item[1]["f1-score"])[:how_many]
    return [[f"weakest: {label}", f"F1 {score_cell(scores)}"] for label, scores in ranked]
