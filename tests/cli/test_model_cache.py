"""The machine's model cache (crmbot.model_cache): a clone reuses what another clone trained from the
same inputs, never something else, and a cache that cannot be used only costs a training."""

import os
import tarfile
from pathlib import Path

import pytest

from crmbot import model_cache, paths, training
from crmbot.steps import StepRunner


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("CRM_MODEL_CACHE_DIR", str(folder))
    return folder


def _model_dir(folder: Path, weights: bytes) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "onnx").mkdir()
    (folder / "onnx" / "model.onnx").write_bytes(weights[::-1])
    return folder


def test_a_directory_stored_by_one_clone_is_fetched_whole_by_another(cache_dir: Path, tmp_path: Path) -> None:
    made = _model_dir(tmp_path / "clone-a" / "encoder", b"weights-1")
    model_cache.store("encoder-cs", "key1", made)

    target = tmp_path / "clone-b" / "encoder"
    assert model_cache.fetch("encoder-cs", "key1", target)
    assert (target / "model.safetensors").read_bytes() == b"weights-1"
    assert (target / "onnx" / "model.onnx").read_bytes() == b"1-sthgiew"
    # Only the finished copy is left beside the target: no scratch folder.
    assert sorted(p.name for p in target.parent.iterdir()) == ["encoder"]


def test_another_key_is_a_miss(cache_dir: Path, tmp_path: Path) -> None:
    model_cache.store("encoder-cs", "key1", _model_dir(tmp_path / "made", b"w"))
    assert not model_cache.fetch("encoder-cs", "key2", tmp_path / "target")
    assert not model_cache.fetch("rasa", "key1", tmp_path / "target")
    assert not (tmp_path / "target").exists()


def test_the_cache_can_be_switched_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_MODEL_CACHE_DIR", "off")
    made = tmp_path / "model.tar.gz"
    made.write_bytes(b"model")
    model_cache.store("rasa", "model.tar.gz", made)
    assert not model_cache.fetch("rasa", "model.tar.gz", tmp_path / "copy.tar.gz")


def test_only_the_newest_entries_of_a_kind_are_kept(cache_dir: Path, tmp_path: Path) -> None:
    for number in range(model_cache.KEEP_PER_KIND + 2):
        made = tmp_path / f"m{number}"
        made.write_bytes(b"x")
        model_cache.store("rasa", f"m{number}", made)
        # Distinct modification times, oldest first, whatever the file system's resolution.
        os.utime(cache_dir / "rasa" / f"m{number}", (number, number))
    made = tmp_path / "newest"
    made.write_bytes(b"x")
    model_cache.store("rasa", "newest", made)
    kept = sorted(p.name for p in (cache_dir / "rasa").iterdir())
    assert kept == ["m3", "m4", "newest"]


def test_an_unwritable_cache_only_costs_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("CRM_MODEL_CACHE_DIR", str(blocker))
    made = tmp_path / "model.tar.gz"
    made.write_bytes(b"model")
    model_cache.store("rasa", "model.tar.gz", made)  # no exception
    assert not model_cache.fetch("rasa", "model.tar.gz", tmp_path / "copy.tar.gz")


class _NoTraining(StepRunner):
    def run(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
        raise AssertionError("Rasa was started although the cache held the model")


def test_a_rasa_model_in_the_cache_is_not_trained_again(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "models"
    monkeypatch.setattr(paths, "MODELS_DIR", models)
    name = training.model_path(training.training_fingerprint()).name
    cached = cache_dir / training.CACHE_KIND / name
    cached.parent.mkdir(parents=True)
    with tarfile.open(cached, "w:gz") as archive:
        info = tarfile.TarInfo("metadata.json")
        archive.addfile(info)

    model = training.ensure_trained(runner=_NoTraining())

    assert model == models / name
    assert model.read_bytes() == cached.read_bytes()


def test_a_forced_training_does_not_take_the_cached_model(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paths, "MODELS_DIR", tmp_path / "models")
    name = training.model_path(training.training_fingerprint()).name
    (cache_dir / training.CACHE_KIND).mkdir(parents=True)
    (cache_dir / training.CACHE_KIND / name).write_bytes(b"cached")
    with pytest.raises(AssertionError, match="Rasa was started"):
        training.ensure_trained(force=True, runner=_NoTraining())
