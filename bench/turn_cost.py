"""Where a chat turn's time goes: the embedded stack under load, sampled by py-spy, per process and part.

    .venv-app/bin/python -m bench.turn_cost [--conversations 20] [--duration-s 40] [--rate 100]
        [--raw-dir DIR]

Starts its own embedded stack as bench/chat_load.py does (`crmbot up --no-tuning`, a scratch demo
store, the trained demo model), warms it up, then runs `--conversations` simulated customers
through `/api/chat` (the same mixed conversations as bench/chat_load.py) for `--duration-s`
seconds while py-spy samples every process of the stack (`--rate` samples a second, without
stopping them: `--nonblocking`). Then it prints and writes bench/results/turn_cost.md:

- per process (Rasa, the action server, the API, the care scheduler): CPU milliseconds per
  answered turn, from /proc (every thread, native ones included), and the share of both cores;
  the load generator on a row of its own (not part of a turn; py-spy's own few percent of a core
  are in no row);
- per part of each process: the process's CPU split in the proportions of py-spy's samples of
  its Python threads (a sample counts where a thread was running, not waiting), each sample named
  by the innermost frame of a known component (NLU tokenizer, featurizers, DIET; policies;
  tracker store; calling the action server; FAQ encoder; …). Work of threads without Python
  frames (TensorFlow's own pool) is spread over the parts in the same proportions.

CPU seconds per turn, not latency. Rasa runs its turns on one thread (one event loop), so its own
milliseconds per turn bound one Rasa process at about 1,000 ÷ that many turns a second, whatever
the cores; the stack's total per turn bounds two cores at 2,000 ÷ that. Sampling adds a few percent to the
processes it samples. Issue 20, item 4.
"""

import argparse
import os
import re
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench.chat_load import (
    CHAT_PATH,
    Measure,
    Target,
    _say,
    apologies,
    demo_customers,
    own_stack,
    run_level,
    warm_up,
)
from bench.results_table import report

PY_SPY: Final = Path(sys.executable).with_name("py-spy")
CLOCK_TICK: Final = os.sysconf("SC_CLK_TCK")

# (part, a substring of a frame's file): the innermost frame matching one names a sample's part.
# Order matters only among rules that match the same frame.
PARTS: Final[tuple[tuple[str, str], ...]] = (
    # Rasa
    ("NLU: jieba tokenizer", "rasa/nlu/tokenizers/"),
    ("NLU: jieba tokenizer", "jieba/"),
    ("NLU: featurizers", "rasa/nlu/featurizers/"),
    ("NLU: DIET and entity extractors", "rasa/nlu/classifiers/"),
    ("NLU: DIET and entity extractors", "rasa/nlu/extractors/"),
    ("policies: TED", "rasa/core/policies/ted_policy"),
    ("policies: rules, memoization, ensemble", "rasa/core/policies/"),
    ("policies: state featurization", "rasa/core/featurizers/"),
    ("tracker store (SQL)", "rasa/core/tracker_store"),
    ("tracker store (SQL)", "bot/tracker_store"),
    ("lock store", "rasa/core/lock_store"),
    ("calling the action server", "rasa/core/actions/action.py"),
    ("calling the action server", "aiohttp/"),
    ("trackers and events (Rasa)", "rasa/shared/core/"),
    ("responses and channel (Rasa)", "rasa/core/nlg/"),
    ("responses and channel (Rasa)", "rasa/core/channels/"),
    ("graph and message processing (Rasa)", "rasa/engine/"),
    ("graph and message processing (Rasa)", "rasa/core/processor"),
    ("graph and message processing (Rasa)", "rasa/core/agent"),
    # The action server and the API
    ("FAQ: encoder (ONNX Runtime)", "onnxruntime/"),
    ("FAQ: encoder (ONNX Runtime)", "knowledge/encoder"),
    ("FAQ: search and ranking", "knowledge/"),
    ("CRM store (SQLAlchemy)", "crm_store/"),
    ("actions", "actions/"),
    ("rasa-sdk", "rasa_sdk/"),
    ("gateway", "api/gateway"),
    ("API routes and channels", "api/"),
    ("HTTP client (httpx)", "httpx/"),
    ("HTTP client (httpx)", "httpcore/"),
    ("rate limits", "limits/"),
    ("care scheduler", "care/"),
    ("care scheduler", "apscheduler/"),
    # Below every process
    ("database driver (SQLAlchemy, psycopg, sqlite3)", "sqlalchemy/"),
    ("HTTP server (Sanic, uvicorn, Starlette)", "sanic/"),
    ("HTTP server (Sanic, uvicorn, Starlette)", "uvicorn/"),
    ("HTTP server (Sanic, uvicorn, Starlette)", "starlette/"),
    ("HTTP server (Sanic, uvicorn, Starlette)", "fastapi/"),
    ("JSON and logging", "json/"),
    ("JSON and logging", "logging/"),
)
PROCESSES: Final[tuple[tuple[str, str], ...]] = (
    # (name, a substring of the command line), first match wins
    ("rasa", "bot.rasa_server run"),
    ("actions", "-m actions"),
    ("api", "uvicorn"),
    ("care", "care_process_cli"),
)
_FRAME: Final = re.compile(r"\(([^():]+):\d+\)$")
_PROCESS: Final = re.compile(r'^process (\d+):"([^"]*)"$')


@dataclass(frozen=True)
class StackProcess:
    name: str
    pid: int


def stack_processes(root: int) -> list[StackProcess]:
    """The stack's processes under `crmbot up` (pid `root`), named by their command line."""
    found = []
    for pid in _descendants(root):
        command = _cmdline(pid)
        name = next((name for name, marker in PROCESSES if marker in command), None)
        if name is not None:
            found.append(StackProcess(name, pid))
    # A process's own forks (the action server's Sanic worker) go with it: keep the topmost.
    pids = {p.pid for p in found}
    return [p for p in found if _parent(p.pid) not in pids]


def _descendants(root: int) -> list[int]:
    children: defaultdict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            children[_parent(int(entry.name))].append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _parent(pid: int) -> int:
    try:
        return int((Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split())[1])
    except (OSError, IndexError, ValueError):
        return 0


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def cpu_seconds(pids: Sequence[int]) -> float:
    """CPU seconds of these processes and all their descendants (threads included)."""
    total = 0.0
    for pid in {d for root in pids for d in _descendants(root)}:
        try:
            after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += (int(after_name[11]) + int(after_name[12])) / CLOCK_TICK
    return total


def part_of(frames: Sequence[str]) -> str:
    """The part a sample's stack belongs to: the innermost frame of a known component."""
    for frame in reversed(frames):
        match = _FRAME.search(frame)
        if match is None:
            continue
        file = match.group(1)
        for part, marker in PARTS:
            if marker in file:
                return part
    return "other (Python)"


def sampled_parts(raw: Path) -> Counter[str]:
    """Samples per part in one py-spy raw file (`frame;frame;… count` lines)."""
    parts: Counter[str] = Counter()
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if not _PROCESS.match(f)]
        parts[part_of(frames)] += int(count)
    return parts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conversations", type=int, default=20, help="simulated customers at once")
    parser.add_argument("--duration-s", type=float, default=40.0, help="seconds of sampled load")
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples a second per process")
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument(
        "--raw-dir", type=Path, help="keep py-spy's raw samples here (one file per process, flamegraph input)"
    )
    args = parser.parse_args(argv)
    if not PY_SPY.exists():
        raise SystemExit(f"{PY_SPY} not found: `make setup` installs py-spy into .venv-app")

    with (
        tempfile.TemporaryDirectory(prefix="turn-cost-") as scratch,
        own_stack(Path(scratch) / "stack") as endpoints,
    ):
        assert endpoints.pid is not None
        raw_dir = args.raw_dir or Path(scratch)
        raw_dir.mkdir(parents=True, exist_ok=True)
        target = Target("api", endpoints.api_url, CHAT_PATH, endpoints.tracker_url)
        run_id = secrets.token_hex(3)
        customers = demo_customers()
        _say("warming up…")
        warm_up(target, run_id, customers)
        processes = stack_processes(endpoints.pid)
        _say("sampling " + ", ".join(f"{p.name} (pid {p.pid})" for p in processes))
        samplers = {
            p.name: subprocess.Popen(
                [
                    str(PY_SPY), "record", "--pid", str(p.pid), "--subprocesses", "--nonblocking",
                    "--rate", str(args.rate), "--duration", str(int(args.duration_s)),
                    "--format", "raw", "--output", str(raw_dir / f"{p.name}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for p in processes
        }  # fmt: skip
        before = {p.name: cpu_seconds([p.pid]) for p in processes}
        own_before = _own_seconds()
        wall = time.monotonic()
        measure = Measure(target, args.conversations)
        run_level(
            measure,
            run_id=run_id,
            duration_s=args.duration_s,
            max_turns=10**9,
            customers=customers,
            known_apologies=apologies(),
            seed=args.seed,
            stack_pids={endpoints.pid},
        )
        wall = time.monotonic() - wall
        spent = {p.name: cpu_seconds([p.pid]) - before[p.name] for p in processes}
        load_generator = _own_seconds() - own_before
        for name, sampler in samplers.items():
            _, errors = sampler.communicate(timeout=120)
            if sampler.returncode != 0:
                raise SystemExit(f"py-spy failed on {name}: {errors.decode(errors='replace')[-400:]}")
        samples = {name: sampled_parts(raw_dir / f"{name}.txt") for name in samplers}

    rows = table_rows(measure, spent, samples, wall)
    machine = wall * (os.cpu_count() or 1)
    turns = max(measure.turns, 1)
    rows.append(
        ["load generator (this benchmark)", "(not part of a turn)", f"{1000 * load_generator / turns:.1f}",
         f"{load_generator / machine:.0%}"]
    )  # fmt: skip
    note = (
        f"`.venv-app/bin/python -m bench.turn_cost --conversations {args.conversations} --duration-s "
        f"{args.duration_s:g} --rate {args.rate}`: the embedded stack (SQLite, one Rasa, one action server, "
        f"one API process), {measure.turns} turns answered in {measure.seconds:.0f} s at "
        f"{args.conversations} conversations: {measure.rate:.1f} turns/s, "
        f"p50 {measure.percentile(0.5) or 0:.2f} s, p95 "
        f"{measure.percentile(0.95) or 0:.2f} s, errors {measure.errors.total()}. CPU ms per turn: the "
        "process's CPU seconds over the window (from /proc, all threads) ÷ turns answered; a part's share is "
        "its share of the process's py-spy samples, applied to that. Rasa runs its turns on one thread, so "
        "its own ms per turn bound its throughput at about 1,000 ÷ that; the two cores bound the stack's at "
        "2,000 ÷ its total."
    )
    path = report(
        "turn_cost",
        f"Cost of a turn: CPU per answered turn at {args.conversations} conversations, by process and part",
        ("process", "part", "CPU ms / turn", "share of the machine"),
        rows,
        note=note,
    )
    _say(f"written to {path}")
    return 0


def table_rows(
    measure: Measure, spent: dict[str, float], samples: dict[str, Counter[str]], wall: float
) -> list[list[object]]:
    """Per process its /proc CPU per turn, then its parts: the process's CPU split in the
    proportions of its py-spy samples."""
    turns = max(measure.turns, 1)
    machine = wall * (os.cpu_count() or 1)
    rows: list[list[object]] = []
    for name, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        parts = samples.get(name) or Counter()
        rows.append(
            [name, f"(whole process, /proc; {parts.total()} samples)", f"{1000 * seconds / turns:.1f}",
             f"{seconds / machine:.0%}"]
        )  # fmt: skip
        for part, count in parts.most_common():
            part_seconds = seconds * count / parts.total()
            if 1000 * part_seconds / turns >= 0.5:
                rows.append(["", part, f"{1000 * part_seconds / turns:.1f}", f"{part_seconds / machine:.0%}"])
    total = sum(spent.values())
    rows.append(["the stack", "(all its processes)", f"{1000 * total / turns:.1f}", f"{total / machine:.0%}"])
    return rows


def _own_seconds() -> float:
    """CPU seconds of this process itself (the simulated customers), not of its children."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    sys.exit(main())
