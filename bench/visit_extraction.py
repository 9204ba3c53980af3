"""Visit-note extraction accuracy: customer, kind, visit date and next date, per sentence file.

    .venv-app/bin/python -m bench.visit_extraction [--only dev|heldout] [--show-errors]

Imports the demo company into a temporary SQLite store, pins today to the demo day (2026-11-23,
a Monday) and runs every sentence of

- bench/data/visits_dev.jsonl: the dev set, written with the extractor; its rules were tuned on
  it, so its figures flatter;
- bench/data/visits_heldout.jsonl: the held-out set, written by someone else and never read while
  writing the rules (skipped with a note when it is not there yet).

through `knowledge.visits.parse_visit` as the employee of each line (the same path as
`crmbot visit parse --as EMPLOYEE_ID --json`). A line is
`{"employee_id", "text", "expect": {"customer_id", "kind", "occurred_at", "next_date", "next_step"?}}`;
`customer_id` null means no single customer may be matched (ambiguous, or outside the scope),
`next_date` null means none is said. "Next date right" counts a null expected and produced as right.
`next_step` is not scored (its wording is free). Targets of issue 16 on unseen sentences: customer
≥ 95 %, kind ≥ 90 %, next date ≥ 90 %.

Writes bench/results/visit_extraction.md. `--show-errors` lists the wrong fields of the dev set
only (printing the held-out errors would invite tuning on them).
"""

import argparse
import json
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import track

from bench.results_table import report
from crm_store.access import Actor, actor_for
from crm_store.db import create_engine_for, make_session_factory, migrate
from crm_store.importer import import_csv_dir
from crm_store.settings import DEMO_DIR
from crmbot.paths import PROJECT_ROOT
from knowledge.visits import parse_visit

DATA = PROJECT_ROOT / "bench" / "data"
SETS = (("dev", DATA / "visits_dev.jsonl"), ("heldout", DATA / "visits_heldout.jsonl"))
DEMO_DAY = date(2026, 11, 23)
FIELDS = ("customer_id", "kind", "occurred_at", "next_date")
TARGETS = {"customer_id": 0.95, "kind": 0.90, "next_date": 0.90}
COLUMNS = [
    "set",
    "sentences",
    "customer right",
    "kind right",
    "occurred_at right",
    "next date right (incl. null)",
    "ms / sentence (p50)",
]

_stderr = Console(stderr=True)


@dataclass
class _Score:
    sentences: int = 0
    right: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FIELDS, 0))
    errors: list[str] = field(default_factory=list)
    millis: list[float] = field(default_factory=list)

    def share(self, name: str) -> float:
        return self.right[name] / self.sentences if self.sentences else 0.0


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=[name for name, _ in SETS], help="measure one file only")
    parser.add_argument("--show-errors", action="store_true", help="list the dev set's wrong fields")
    args = parser.parse_args(argv)
    started = time.monotonic()

    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine_for(f"sqlite:///{Path(folder) / 'crm.db'}")
        migrate(engine)
        sessions = make_session_factory(engine)
        imported = import_csv_dir(sessions, DEMO_DIR)
        assert imported.ok, [str(error) for error in imported.errors]
        rows: list[list[object]] = []
        scores: dict[str, _Score] = {}
        with sessions() as session:
            actors: dict[str, Actor] = {}
            for name, path in SETS:
                if args.only and name != args.only:
                    continue
                if not path.is_file():
                    print(f"skipping {name}: {path.relative_to(PROJECT_ROOT)} is not there yet")
                    rows.append([name, "not measured: file not present", "—", "—", "—", "—", "—"])
                    continue
                score = scores[name] = _Score()
                for line in track(_lines(path), description=f"{name}", console=_stderr, transient=True):
                    employee = line["employee_id"]
                    actor = actors.get(employee) or actors.setdefault(employee, actor_for(session, employee))
                    begun = time.perf_counter()
                    got = parse_visit(session, actor, line["text"], today=DEMO_DAY).to_json()
                    score.millis.append((time.perf_counter() - begun) * 1000)
                    score.sentences += 1
                    wrong = []
                    for key in FIELDS:
                        if got[key] == line["expect"].get(key):
                            score.right[key] += 1
                        else:
                            wrong.append(f"{key} {got[key]} ≠ {line['expect'].get(key)}")
                    if wrong:
                        score.errors.append(f"{employee} {line['text']}\n    " + "; ".join(wrong))
                millis = sorted(score.millis)
                rows.append(
                    [
                        name,
                        score.sentences,
                        *(f"{score.share(key):.1%}" for key in FIELDS),
                        f"{millis[len(millis) // 2]:.1f}" if millis else "—",
                    ]
                )
        engine.dispose()

    if args.show_errors and "dev" in scores:
        for error in scores["dev"].errors:
            print(error)
    targets = ", ".join(f"{key} ≥ {share:.0%}" for key, share in TARGETS.items())
    path = report(
        "visit_extraction",
        "Visit-note extraction (knowledge.visits, demo company, today 2026-11-23)",
        COLUMNS,
        rows,
        note=(
            f"Targets of issue 16 on unseen sentences: {targets}.\n\n"
            "- dev: bench/data/visits_dev.jsonl, written together with the rules "
            "(tuned on it: it flatters).\n"
            "- heldout: bench/data/visits_heldout.jsonl, written by another person; "
            "no rule was tuned on it.\n"
            "- customer right: the id, or null where the sentence names no single customer of the "
            "employee's scope (ambiguous or outside it). next date right counts null-when-none.\n"
            "- Time per sentence excludes building the parser of each scope (once per employee, "
            "about a second, then cached).\n\n"
            "Command: `.venv-app/bin/python -m bench.visit_extraction`."
        ),
    )
    print(f"written to {path} in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
