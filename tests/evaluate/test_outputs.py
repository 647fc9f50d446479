"""eval.py's --out checks: never one of the evaluated run's own files, always writable, before evaluating."""

import os

import pytest

from cnnjax.evaluate.outputs import OutputError, Outputs, prepare


@pytest.fixture
def workdir(tmp_path):
    run = tmp_path / "run"
    for name in ("run.json", "metrics.jsonl", ".lock", "checkpoints/40/meta/metadata", "plots/loss.png",
                 "tensorboard/events"):
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text(name)
    return run


def _refused(out, workdir, match):
    before = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
    with pytest.raises(OutputError, match=match) as refused:
        prepare(str(out), workdir)
    assert "\n" not in str(refused.value)
    assert {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("name", ["run.json", "metrics.jsonl", ".lock", "checkpoints/40/meta/metadata",
                                  "checkpoints/new.json", "plots/eval.json", "tensorboard/x/y.json"])
def test_the_runs_own_files_are_refused(workdir, name):
    _refused(workdir / name, workdir, "the training run's own")


def test_links_and_relative_paths_to_the_runs_files_are_refused(workdir, tmp_path, monkeypatch):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "r_confusion.png").symlink_to(workdir / "run.json")  # a sibling output
    _refused(tmp_path / "out" / "r.json", workdir, r"r_confusion.png, the training run's own run.json")
    os.link(workdir / "metrics.jsonl", tmp_path / "out" / "m.json")
    _refused(tmp_path / "out" / "m.json", workdir, "own metrics.jsonl")
    monkeypatch.chdir(workdir / "plots")
    _refused("../run.json", workdir, "own run.json")


def test_directories_and_unwritable_places_are_refused(workdir, tmp_path):
    _refused(tmp_path, workdir, "is a directory")
    _refused(f"{tmp_path}/new/", workdir, "is a directory")
    _refused("", workdir, "is empty")
    (tmp_path / "eval_logits.npy").mkdir()
    _refused(tmp_path / "eval.json", workdir, "eval_logits.npy, which is a directory")
    _refused(workdir / "run.json" / "eval.json", workdir, "cannot create the directory")
    _refused("/proc/eval.json", workdir, "cannot create files in /proc")


def test_other_files_in_the_workdir_are_fine(workdir):
    assert prepare(str(workdir / "test.json"), workdir) == Outputs.of(workdir / "test.json")
    outputs = prepare(str(workdir / "eval" / "test.json"), workdir)
    assert outputs.confusion_png == workdir / "eval" / "test_confusion.png" and (workdir / "eval").is_dir()
    assert [p.name for p in outputs] == ["test.json", "test_confusion.png", "test_logits.npy"]
