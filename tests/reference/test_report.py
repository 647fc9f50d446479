"""`cnnjax report`: the timm-schema CSVs, eval.py result files, the figure, and one-line errors."""

from __future__ import annotations

import csv
import json
import pathlib

import pytest

from cnnjax import cli
from cnnjax.introspect import input_array, trace_forward
from cnnjax.models import create_model, list_models, model_info
from cnnjax.reference.published import PUBLISHED, published
from cnnjax.reference.report import TIMM_COLUMNS
from cnnjax.reference.results import ReportError, read_results

PATTERN = "resnet[25]0"  # resnet20 (CIFAR) and resnet50 (ImageNet): two abstract traces, ~2 s


def registry_params(name: str) -> int:
    return trace_forward(create_model(name), input_array(model_info(name).input_shape)).params


def eval_json(path: pathlib.Path, model: str = "resnet50", dataset: str = "imagenet2012", **extra) -> pathlib.Path:
    """What `eval.py --out` writes (fractions, plus fields the report does not read)."""
    result = {"workdir": "ckpt/x", "model": model, "dataset": dataset, "split": "validation", "step": 0,
              "epoch": None, "num_examples": 50000, "top1": 0.7613, "top5": 0.92862, "nll": 0.96, **extra}
    path.write_text(json.dumps(result))
    return path


def read_csv(path: pathlib.Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open() as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def test_published_figures_name_registered_models_once_with_sources():
    names = [p.model for p in PUBLISHED]
    assert len(names) == len(set(names)) and set(names) <= set(list_models())
    for p in PUBLISHED:
        assert p.params_source and (p.paper or p.torchvision or p.dataset != "imagenet2012"), p.model
        for acc in (p.paper, p.torchvision):
            assert acc is None or (acc.source and acc.protocol), p.model
    assert published("resnet50").torchvision.top1 == 76.130 and published("mlp") is None


def test_published_params_equal_our_registry_where_the_layout_is_the_same():
    for name in ("resnet50", "resnet20", "densenet121", "efficientnet_b0"):
        assert published(name).params == registry_params(name), name


def test_reads_an_eval_json_as_percentages(tmp_path):
    (evaluation,) = read_results([eval_json(tmp_path / "r50.json", img_size=224, interpolation="bicubic")])
    assert (evaluation.model, evaluation.dataset, evaluation.split) == ("resnet50", "imagenet2012", "validation")
    assert evaluation.top1 == pytest.approx(76.13) and evaluation.top5 == pytest.approx(92.862)
    assert (evaluation.img_size, evaluation.crop_pct, evaluation.interpolation) == (224, None, "bicubic")


def test_reads_the_preprocessing_of_converted_weights(tmp_path):
    pre = {"resize": 256, "crop": 224, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    (evaluation,) = read_results([eval_json(tmp_path / "r50.json", step="converted", preprocessing=pre)])
    assert (evaluation.img_size, evaluation.crop_pct, evaluation.interpolation) == (224, 0.875, None)


def test_a_directory_contributes_its_eval_results_and_skips_other_json(tmp_path):
    eval_json(tmp_path / "b.json", model="resnet20", dataset="cifar10")
    eval_json(tmp_path / "a.json")
    (tmp_path / "run.json").write_text(json.dumps({"config": {}}))
    assert [e.model for e in read_results([tmp_path])] == ["resnet50", "resnet20"]


def test_report_writes_timm_csvs_markdown_and_figure(tmp_path, capsys):
    results = eval_json(tmp_path / "r50.json")
    assert cli.main(["report", "--results", str(results), "--out", str(tmp_path / "out"), "--pattern", PATTERN]) == 0
    out = tmp_path / "out"
    columns, rows = read_csv(out / "results.csv")
    assert columns == list(TIMM_COLUMNS)
    (row,) = rows
    assert row == dict(model="resnet50", img_size="224", top1="76.130", top1_err="23.870", top5="92.862",
                       top5_err="7.138", param_count=row["param_count"], crop_pct="0.875", interpolation="bilinear")
    assert round(float(row["param_count"]) * 1e6) == registry_params("resnet50") == 25_557_032
    columns, rows = read_csv(out / "published.csv")
    assert columns == list(TIMM_COLUMNS) and [r["model"] for r in rows] == ["resnet50"]  # resnet20: no torchvision
    assert (rows[0]["top1"], rows[0]["top5"], rows[0]["param_count"]) == ("76.130", "92.862", "25.557032")
    report = (out / "report.md").read_text()
    assert "| resnet50 | imagenet2012 | 25,557,032 | 25,557,032 | 1.000 | 4.089 | 4.089 | 1.000 | 77.15 / 93.29 " \
           "| 76.13 / 92.86 | 76.13 / 92.86 |" in report
    assert "| resnet20 | cifar10 | 269,722 | 269,722 | 1.000 |" in report and "complexity.png" in report
    assert (out / "complexity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| resnet50 | imagenet2012 |" in capsys.readouterr().out


def test_an_evaluation_on_another_dataset_is_not_compared(tmp_path, capsys):
    results = eval_json(tmp_path / "r20.json", model="resnet20", dataset="fashion_mnist")
    assert cli.main(["report", "--results", str(results), "--pattern", "resnet20"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("| 91.25 / – |  |  |")


def one_line_error(capsys, argv: list[str]) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnjax: error: ") and "\n" not in err
    return err


def test_missing_out_parent_is_one_line(tmp_path, capsys):
    err = one_line_error(capsys, ["report", "--out", str(tmp_path / "no" / "out"), "--pattern", PATTERN])
    assert f"parent directory {tmp_path / 'no'} does not exist" in err


def test_out_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "f").write_text("")
    assert "is a file" in one_line_error(capsys, ["report", "--out", str(tmp_path / "f"), "--pattern", PATTERN])


@pytest.mark.parametrize("content, message", [
    ("{not json", "cannot read result file"),
    (json.dumps({"model": "resnet50", "top1": 0.5}), "has no dataset, split"),
    (json.dumps({"model": "resnet5O", "dataset": "d", "split": "s", "top1": 0.5}), "is not registered"),
    (json.dumps({"model": "resnet50", "dataset": "d", "split": "s", "top1": 76.1}), "fraction in [0, 1]"),
    (json.dumps([1, 2]), "not eval.py's object"),
])
def test_bad_result_files_are_named_in_one_line(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    err = one_line_error(capsys, ["report", "--results", str(bad), "--pattern", PATTERN])
    assert str(bad) in err and message in err


def test_missing_result_path_and_unmatched_pattern_are_errors(tmp_path):
    with pytest.raises(ReportError, match="does not exist"):
        read_results([tmp_path / "nothing.json"])
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["report", "--results"])
    assert cli.main(["report", "--pattern", "nomodel*"]) == 2
