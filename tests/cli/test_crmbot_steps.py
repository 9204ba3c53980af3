"""Long set-up steps (crmbot.steps, crmbot.tuning_job, crmbot.preparation): progress, logs, failures,
the tuned model put in place whole, and the Rasa training beside the encoder's build."""

import logging
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from crmbot import preparation, steps, tuning_job
from crmbot.steps import (
    Progress,
    RasaTrainingProgress,
    ReportedProgress,
    StepFailed,
    StepRunner,
    duration,
    progress_line,
)

# The store is not read: the names are not written in these tests.
ENGINE = create_engine("sqlite://")


@pytest.fixture(autouse=True)
def log_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Step logs go to the test's folder, never to the project's var/log."""
    folder = tmp_path / "log"
    monkeypatch.setattr(steps, "LOG_DIR", folder)
    return folder


def test_durations_read_as_a_person_says_them() -> None:
    assert duration(4.4) == "4 秒"
    assert duration(60) == "1 分钟"
    assert duration(190) == "3 分 10 秒"
    assert duration(12 * 60 + 40) == "13 分钟"


def test_a_step_that_says_nothing_is_estimated_from_its_usual_duration() -> None:
    progress = Progress(usual_s=60)
    assert progress.remaining_s(20) == 40
    assert progress.remaining_s(90) == 0  # over time: "即将完成", never a negative time
    assert progress_line("构建", progress, 20) == "构建：已用 20 秒，预计还需约 40 秒"
    assert progress_line("构建", progress, 90).endswith("即将完成")


def test_reported_progress_scales_the_elapsed_time() -> None:
    progress = ReportedProgress(usual_s=600)
    progress.feed("Loading weights: 100%")
    assert progress.remaining_s(10) == 590  # nothing reported yet
    progress.feed("progress 0.2500 (training)")
    assert progress.fraction() == 0.25
    assert progress.remaining_s(100) == pytest.approx(300)
    assert progress_line("调优", progress, 100) == "调优：已完成 25%，已用 1 分 40 秒，预计还需约 5 分钟"


def test_rasa_progress_follows_components_and_epoch_bars() -> None:
    progress = RasaTrainingProgress(usual_s=450)
    assert progress.fraction() == 0.0
    progress.feed("INFO rasa.engine.training.hooks  - Starting to train component 'DIETClassifier'.")
    progress.feed("Epochs:  50%|█████     | 40/80 [01:40<01:40, 2.5s/it, t_loss=1.2, i_acc=0.9]")
    assert progress.fraction() == pytest.approx(0.053 + 0.5 * 0.823)
    # DIET's own pace (half its epochs in no time here) plus the usual time of what follows it
    assert progress.remaining_s(elapsed_s=300) == pytest.approx((0.009 + 0.087 + 0.028) * 450, abs=1.0)
    progress.feed("INFO rasa.engine.training.hooks  - Starting to train component 'EntitySynonymMapper'.")
    progress.feed("INFO rasa.engine.training.hooks  - Starting to train component 'TEDPolicy'.")
    progress.feed("Epochs: 100%|██████████| 40/40 [01:40<00:00, 2.5s/it]")
    assert progress.fraction() == pytest.approx(0.972)


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_step_writes_its_output_to_its_log_and_reports_progress(
    log_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    code = (
        "import time\n"
        "print(\"WARNING: Location 'file:///opt/x/' is ignored: it is neither a file nor a directory.\")\n"
        "print('progress 0.5000', flush=True)\n"
        "time.sleep(0.5)\n"
        "print('\\rEpochs: 1/2\\rEpochs: 2/2')\n"
    )
    lines: list[str] = []
    with caplog.at_level(logging.INFO, logger="crmbot.steps"):
        StepRunner().run(
            "测试步骤",
            _python(code),
            log_name="test.log",
            progress=ReportedProgress(10),
            on_line=lines.append,
            report_every_s=0.2,
        )
    assert "progress 0.5000" in (log_dir / "test.log").read_text(encoding="utf-8")
    assert lines[-2:] == ["Epochs: 1/2", "Epochs: 2/2"]  # a bar's redraws are lines of their own
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("测试步骤：已完成 50%，已用") for m in messages)
    assert messages[-1].startswith("测试步骤：完成，用时")


def test_a_failing_step_shows_the_end_of_its_log_without_the_noise(log_dir: Path) -> None:
    code = (
        "import sys, warnings\n"
        "print(\"WARNING: Location 'file:///opt/x/' is ignored: it is neither a file nor a directory.\")\n"
        "warnings.warn('old API', DeprecationWarning, stacklevel=1)\n"
        "print('model directory not found: var/models/x', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    with pytest.raises(StepFailed) as failure:
        StepRunner().run("测试步骤", _python(code), log_name="fail.log", progress=Progress(5))
    assert failure.value.returncode == 3
    assert failure.value.tail == ["model directory not found: var/models/x"]
    assert "is ignored" in (log_dir / "fail.log").read_text(encoding="utf-8")  # the log keeps all


def test_stopping_the_runner_stops_a_running_step_and_starts_no_more() -> None:
    runner = StepRunner()
    failures: list[StepFailed] = []

    def run() -> None:
        try:
            runner.run(
                "睡眠", _python("import time; time.sleep(60)"), log_name="s.log", progress=Progress(60)
            )
        except StepFailed as error:
            failures.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(1.0)
    started = time.monotonic()
    runner.stop_all()
    thread.join(timeout=20)
    assert time.monotonic() - started < 15
    assert failures and failures[0].returncode != 0
    with pytest.raises(StepFailed):
        runner.run("又一个", _python("pass"), log_name="n.log", progress=Progress(1))


def test_the_tuned_model_replaces_the_previous_one_whole(tmp_path: Path) -> None:
    target = tmp_path / "multilingual-e5-small-cs"
    (target / "onnx").mkdir(parents=True)
    (target / "modules.json").write_text("old", encoding="utf-8")
    staging = tmp_path / ".multilingual-e5-small-cs.staging"
    (staging / "onnx").mkdir(parents=True)
    (staging / "modules.json").write_text("new", encoding="utf-8")
    tuning_job._replace(staging, target)
    assert (target / "modules.json").read_text(encoding="utf-8") == "new"
    assert not staging.exists()
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # the old one is gone


def test_the_tuning_reporter_counts_training_steps_between_its_phases(
    capsys: pytest.CaptureFixture[str],
) -> None:
    reporter = tuning_job._Reporter(training_steps=4, every_s=60)
    assert reporter.fraction() < 0.1  # mining hard negatives
    reporter.step()
    reporter.step()
    shares = tuning_job._PHASES
    expected = (shares["mining"] + 0.5 * shares["training"]) / tuning_job.TUNING_S
    assert reporter.fraction() == pytest.approx(expected)
    reporter.step()
    reporter.step()
    reporter.phase("export")
    assert reporter.fraction() >= (tuning_job.TUNING_S - shares["export"]) / tuning_job.TUNING_S
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[-1] for line in printed] == ["(training)", "(saving)", "(export)"]


def test_rasa_training_and_the_encoder_build_run_at_the_same_time(monkeypatch: pytest.MonkeyPatch) -> None:
    both_running = threading.Barrier(2, timeout=10)
    model = Path("/models/x.tar.gz")

    def build_base(runner: StepRunner) -> None:
        both_running.wait()

    def ensure_trained(*, force: bool = False, runner: StepRunner | None = None) -> Path:
        both_running.wait()  # would time out if the two ran one after the other
        return model

    monkeypatch.setattr(preparation, "write_names", lambda engine: None)
    monkeypatch.setattr(preparation, "base_is_ready", lambda: False)
    monkeypatch.setattr(preparation, "needs_training", lambda: True)
    monkeypatch.setattr(preparation, "build_base", build_base)
    monkeypatch.setattr(preparation, "ensure_trained", ensure_trained)
    assert preparation.prepare_for_start(ENGINE, StepRunner()) == model


def test_a_failed_training_stops_the_encoder_build(monkeypatch: pytest.MonkeyPatch) -> None:
    stopped = threading.Event()

    class Runner(StepRunner):
        def stop_all(self) -> None:
            stopped.set()

    def build_base(runner: StepRunner) -> None:
        assert stopped.wait(10), "the build was left running"

    def ensure_trained(*, force: bool = False, runner: StepRunner | None = None) -> Path:
        raise StepFailed("Rasa 模型训练", 1, Path("rasa-train.log"), ["YamlSyntaxError"])

    monkeypatch.setattr(preparation, "write_names", lambda engine: None)
    monkeypatch.setattr(preparation, "base_is_ready", lambda: False)
    monkeypatch.setattr(preparation, "needs_training", lambda: True)
    monkeypatch.setattr(preparation, "build_base", build_base)
    monkeypatch.setattr(preparation, "ensure_trained", ensure_trained)
    with pytest.raises(StepFailed):
        preparation.prepare_for_start(ENGINE, Runner())
    assert stopped.is_set()
