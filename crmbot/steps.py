"""Long set-up steps as child processes: a log under `var/log/`, and a progress line with time left.

Building the FAQ encoder, exporting it for ONNX Runtime, tuning it and training Rasa each take
from half a minute to several minutes, and each prints screens of third-party output that tells
the user nothing (weight-loading bars, transformers' load reports, TensorFlow and setuptools
deprecation warnings, Rasa's list of responses only actions use). So a step's whole output goes
to its log file, and the console gets one line when it starts, one at least every
`REPORT_EVERY_S` with how far it is and the time left, and one when it ends. A step that fails
prints the end of its log, known noise left out, so the reason is on the screen.

How far a step is comes from its own output where it says (Rasa's epoch bars, the tuning job's
`progress` lines), else from how long it usually takes on a two-core machine.
"""

import logging
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from crm_store.settings import child_environment
from crmbot import paths

logger = logging.getLogger(__name__)

LOG_DIR: Final = paths.VAR_DIR / "log"
# The brief promise is "a line at least every 30 s"; 20 s leaves room for a slow read.
REPORT_EVERY_S: Final = 20.0
# Lines of a failed step's log shown on the console.
FAILURE_TAIL_LINES: Final = 30

QUIET_ENVIRONMENT: Final = {
    # transformers' weight-loading bars and "LOAD REPORT" (the unused pooler of e5 is reported
    # MISSING at every load) are warnings of its own logger; errors still raise.
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "PYTHONUNBUFFERED": "1",
}
"""Environment of every step: third-party chatter off at its source, where a library allows it."""

# Lines a failed step's tail leaves out: they are in every run, failed or not, and never the cause.
NOISE: Final = re.compile(
    r"|".join(
        (
            r"^WARNING: Location '.*' is ignored: it is neither a file nor a directory\.$",
            r"^\s*(Loading weights|Writing model shards|Batches|Epochs):",
            r"DeprecationWarning",
            r"^\s*(import pkg_resources|declare_namespace\(pkg\)|from jax import)",
            r"^Implementing implicit namespace packages",
            r"UserWarning: The utterance '.*' is not used in any story or rule\.",
        )
    )
)


class StepFailed(RuntimeError):
    """A step's process exited with an error; its log holds the whole output."""

    def __init__(self, label: str, returncode: int, log_file: Path, tail: Sequence[str]) -> None:
        super().__init__(f"{label} failed with exit code {returncode}; log: {log_file}")
        self.label = label
        self.returncode = returncode
        self.log_file = log_file
        self.tail = list(tail)


class Progress:
    """How far a step is and how long it has left; this base knows only the step's usual duration.

    Subclasses read the step's output (`feed`) and say which fraction of the work is done; the
    time left is then the elapsed time scaled by what remains, so a slower machine or a busy one
    gets a longer estimate as soon as the step has reported a little.
    """

    # Below this share done, the rate is too uncertain; the usual duration is the better guess.
    _TRUST_FROM: Final = 0.05

    def __init__(self, usual_s: float) -> None:
        self.usual_s = usual_s

    def feed(self, line: str) -> None:
        """One line of the step's output (bars' redraws arrive as lines of their own)."""

    def fraction(self) -> float | None:
        """Share of the work done, 0–1, or None when the output does not say."""
        return None

    def remaining_s(self, elapsed_s: float) -> float:
        done = self.fraction()
        if done is not None and done >= self._TRUST_FROM:
            return elapsed_s * (1.0 - done) / done
        return max(self.usual_s - elapsed_s, 0.0)


class ReportedProgress(Progress):
    """A step that prints `progress 0.42` lines itself (crmbot.tuning_job)."""

    _LINE: Final = re.compile(r"^progress (?P<done>[01](?:\.\d+)?)\b")

    def __init__(self, usual_s: float) -> None:
        super().__init__(usual_s)
        self._done: float | None = None

    def feed(self, line: str) -> None:
        if match := self._LINE.match(line.strip()):
            self._done = min(max(float(match["done"]), 0.0), 1.0)

    def fraction(self) -> float | None:
        return self._done


class RasaTrainingProgress(Progress):
    """`rasa train`: validation and featurisers, then DIET's epochs, then the policies (TED's epochs).

    Rasa logs "Starting to train component 'X'" for each component and draws an `Epochs: n/N` bar
    for DIET and TED. The shares below are one training of the demo company on two cores with the
    staff intents (2026-12-06, about 760 s idle): validation and featurisers 40 s, DIET 624 s, the
    mapper, memoisation and rule policies 7 s, TED 66 s, packing the model 21 s.
    """

    _SHARES: Final = {
        "before": 0.053,
        "DIETClassifier": 0.823,
        "between": 0.009,
        "TEDPolicy": 0.087,
        "after": 0.028,
    }
    _COMPONENT: Final = re.compile(r"Starting to train component '(?P<name>\w+)'")
    _EPOCHS: Final = re.compile(r"Epochs:\s+\d+%\|[^|]*\|\s*(?P<n>\d+)/(?P<total>\d+)")

    def __init__(self, usual_s: float) -> None:
        super().__init__(usual_s)
        self._phase = "before"
        self._phase_started = time.monotonic()
        self._epochs = 0.0

    def feed(self, line: str) -> None:
        if match := self._COMPONENT.search(line):
            name = match["name"]
            if name in self._SHARES:
                self._enter(name)
            elif self._phase == "DIETClassifier":
                self._enter("between")
            elif self._phase == "TEDPolicy":
                self._enter("after")
        elif (match := self._EPOCHS.search(line)) and self._phase in ("DIETClassifier", "TEDPolicy"):
            self._epochs = int(match["n"]) / max(int(match["total"]), 1)

    def _enter(self, phase: str) -> None:
        self._phase, self._phase_started, self._epochs = phase, time.monotonic(), 0.0

    def remaining_s(self, elapsed_s: float) -> float:
        """Within an epoch bar: this phase's own pace for its epochs left, plus the usual time of
        the phases after it. The whole step's pace would mislead: on a busy machine the first
        phase (loading TensorFlow) is slowed far more than the epochs."""
        order = list(self._SHARES)
        later = sum(self._SHARES[phase] for phase in order[order.index(self._phase) + 1 :]) * self.usual_s
        if self._phase in ("DIETClassifier", "TEDPolicy") and self._epochs >= self._TRUST_FROM:
            spent = time.monotonic() - self._phase_started
            return spent * (1.0 - self._epochs) / self._epochs + later
        return self._SHARES[self._phase] * self.usual_s * (1.0 - self._epochs) + later

    def fraction(self) -> float | None:
        order = list(self._SHARES)
        finished = sum(self._SHARES[phase] for phase in order[: order.index(self._phase)])
        within = self._epochs if self._phase in ("DIETClassifier", "TEDPolicy") else 0.0
        return finished + within * self._SHARES[self._phase]


def duration(seconds: float) -> str:
    """A duration as a person says it: "40 秒", "3 分 10 秒", "约 12 分钟" beyond ten minutes."""
    seconds = max(round(seconds), 0)
    if seconds < 60:
        return f"{seconds} 秒"
    minutes, rest = divmod(seconds, 60)
    if minutes >= 10:
        return f"{minutes + (rest >= 30)} 分钟"
    return f"{minutes} 分 {rest} 秒" if rest else f"{minutes} 分钟"


def progress_line(label: str, progress: Progress, elapsed_s: float) -> str:
    """The line printed while a step runs.

    For example "Rasa 模型训练：已完成 45%，已用 3 分 2 秒，预计还需约 3 分 40 秒".
    """
    done = progress.fraction()
    share = f"已完成 {done:.0%}，" if done is not None else ""
    left = progress.remaining_s(elapsed_s)
    estimate = f"预计还需约 {duration(left)}" if left >= 5 else "即将完成"
    return f"{label}：{share}已用 {duration(elapsed_s)}，{estimate}"


@dataclass
class _Running:
    """A started step: its process, and what its output said so far."""

    process: subprocess.Popen[bytes]
    progress: Progress
    log_file: Path
    on_line: Callable[[str], None] | None
    tail: list[str] = field(default_factory=list)

    def pump(self) -> None:
        """Copy the output to the log and feed its lines to the progress and `on_line`, until EOF."""
        assert self.process.stdout is not None
        pending = b""
        with self.log_file.open("ab") as log:
            while chunk := os.read(self.process.stdout.fileno(), 65536):
                log.write(chunk)
                log.flush()
                # A progress bar redraws itself with carriage returns: each redraw is a line here.
                *lines, pending = re.split(rb"[\r\n]", pending + chunk)
                for raw in lines:
                    self._line(raw.decode("utf-8", errors="replace"))
            if pending:
                self._line(pending.decode("utf-8", errors="replace"))

    def _line(self, line: str) -> None:
        if not line.strip():
            return
        self.progress.feed(line)
        if not NOISE.search(line):
            self.tail = [*self.tail[-(FAILURE_TAIL_LINES - 1) :], line]
        if self.on_line is not None:
            self.on_line(line)


class StepRunner:
    """Runs steps, and stops every step still running when asked (Ctrl-C, or `crmbot up` ending)."""

    def __init__(self) -> None:
        self._running: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self._stopped = False

    def run(
        self,
        label: str,
        command: Sequence[str],
        *,
        log_name: str,
        progress: Progress,
        env: dict[str, str] | None = None,
        low_priority: bool = False,
        on_line: Callable[[str], None] | None = None,
        report_every_s: float = REPORT_EVERY_S,
    ) -> float:
        """Run `command` to its end with progress lines; return its duration in seconds.

        Raises StepFailed (with the end of the log) when it exits with an error. `low_priority`
        runs it under `nice`, so that it yields both cores to whatever serves customers.
        """
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log_file = LOG_DIR / log_name
        log_file.write_bytes(b"")
        argv = [*(["nice", "-n", "19"] if low_priority else []), *command]
        started = time.monotonic()
        logger.info("%s：开始（预计约 %s，日志 %s）", label, duration(progress.usual_s), _shown(log_file))
        with self._lock:
            if self._stopped:  # stopped while this step waited for its turn
                raise StepFailed(label, -1, log_file, [])
            process = subprocess.Popen(
                argv,
                cwd=paths.PROJECT_ROOT,
                env={**child_environment(QUIET_ENVIRONMENT), **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            self._running.add(process)
        running = _Running(process, progress, log_file, on_line)
        reader = threading.Thread(target=running.pump, name=f"step-{log_name}", daemon=True)
        reader.start()
        try:
            while True:
                try:
                    returncode = process.wait(timeout=report_every_s)
                    break
                except subprocess.TimeoutExpired:
                    logger.info(progress_line(label, progress, time.monotonic() - started))
        finally:
            with self._lock:
                self._running.discard(process)
            if process.poll() is None:  # interrupted while waiting: take the child down with us
                _stop(process)
        reader.join(timeout=5.0)
        elapsed = time.monotonic() - started
        if returncode != 0:
            raise StepFailed(label, returncode, log_file, running.tail)
        logger.info("%s：完成，用时 %s", label, duration(elapsed))
        return elapsed

    @property
    def stopped(self) -> bool:
        """Whether `stop_all` was called: a step that failed since was stopped, not broken."""
        return self._stopped

    def stop_all(self) -> None:
        """Stop every step still running (they are children of this process); start no more."""
        with self._lock:
            self._stopped = True
            running = list(self._running)
        for process in running:
            _stop(process)


def _stop(process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _shown(path: Path) -> str:
    """A path relative to the project when it is inside it: shorter on the console."""
    try:
        return str(path.relative_to(paths.PROJECT_ROOT))
    except ValueError:
        return str(path)


def report_failure(error: StepFailed) -> None:
    """Say on the console which step failed and why (the end of its log, noise left out)."""
    logger.error("%s失败（退出码 %d）。日志最后几行：", error.label, error.returncode)
    for line in error.tail:
        logger.error("  %s", line)
    logger.error("完整日志：%s", _shown(error.log_file))
