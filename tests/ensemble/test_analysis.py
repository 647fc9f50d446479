"""analyse() end to end on synthetic members: JSON-able, nothing fitted on the report split, report files written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnjax.ensemble import analysis, report_files
from cnnjax.ensemble.combiners import COMBINERS, CombinerError

from .helpers import members

NAMES = ["alpha", "beta", "gamma", "delta"]


@pytest.fixture(scope="module")
def data():
    fit_logits, fit_labels = members(4, 400, 5, seed=0, skill=1.0)
    report_logits, report_labels = members(4, 300, 5, seed=1, skill=1.0)
    return fit_logits.astype(np.float32), fit_labels, report_logits.astype(np.float32), report_labels


@pytest.fixture(scope="module")
def result(data):
    return analysis.analyse(*data, NAMES, COMBINERS, temperature_scaling=True)


def test_result_is_strict_json_with_the_documented_keys(result):
    text = json.dumps(result, allow_nan=False)
    assert json.loads(text) == result
    assert {"fit_split", "report_split", "num_examples", "members", "best_member", "combiners", "diversity",
            "size_curve", "timings"} <= set(result)
    assert result["num_examples"] == {"fit": 400, "report": 300}
    assert [m["name"] for m in result["members"]] == NAMES
    assert set(result["combiners"]) == set(COMBINERS) and set(result["timings"]) == {*COMBINERS, "total"}
    for entry in result["combiners"].values():
        assert {"top1", "top5", "nll", "ece", "brier", "fit", "vs_best", "info"} <= set(entry)
        assert entry["vs_best"]["ci_low"] <= entry["vs_best"]["diff"] <= entry["vs_best"]["ci_high"]
    assert result["combiners"]["vote"]["nll"] is None and result["combiners"]["vote"]["fit"]["nll"] is None
    assert set(result["combiners"]["weighted"]["info"]["weights"]) == set(NAMES)
    greedy = result["combiners"]["greedy"]["info"]
    assert sum(greedy["counts"].values()) == greedy["rounds"]
    assert result["combiners"]["mean"]["info"]["temperature"] > 0
    assert len(result["size_curve"]) == 4 and len(result["diversity"]["disagreement"]) == 4


def test_best_member_is_chosen_on_the_fit_split(result):
    rows = result["members"]
    best = result["best_member_index"]
    assert result["best_member"] == NAMES[best]
    assert all((rows[best]["fit_top1"], -rows[best]["fit_nll"]) >= (r["fit_top1"], -r["fit_nll"]) for r in rows)
    assert result["size_curve"][0]["members"] == [NAMES[best]]
    assert result["size_curve"][0]["top1"] == pytest.approx(rows[best]["top1"])


def test_report_labels_change_no_fitted_value(data, result):
    fit_logits, fit_labels, report_logits, report_labels = data
    shuffled = np.random.default_rng(0).permutation(report_labels)
    other = analysis.analyse(fit_logits, fit_labels, report_logits, shuffled, NAMES, COMBINERS,
                             temperature_scaling=True)
    assert other["best_member"] == result["best_member"] == NAMES[result["best_member_index"]]
    for name in COMBINERS:
        drop = lambda info: {k: v for k, v in info.items() if k not in ("iterations",)}  # noqa: E731
        assert drop(other["combiners"][name]["info"]) == drop(result["combiners"][name]["info"])
        assert other["combiners"][name]["fit"] == result["combiners"][name]["fit"]


def test_inputs_are_checked_before_any_work(data):
    fit_logits, fit_labels, report_logits, report_labels = data
    with pytest.raises(CombinerError, match="valid: vote"):
        analysis.analyse(*data, NAMES, ["mean", "bagging"])
    with pytest.raises(analysis.EnsembleInputError):
        analysis.analyse(fit_logits, fit_labels, report_logits[:, :, :4], report_labels, NAMES, ["mean"])
    with pytest.raises(analysis.EnsembleInputError):
        analysis.analyse(fit_logits, fit_labels, report_logits, report_labels, NAMES[:3], ["mean"])
    with pytest.raises(analysis.EnsembleInputError, match="labels"):
        analysis.analyse(fit_logits, fit_labels + 5, report_logits, report_labels, NAMES, ["mean"])


def test_write_report(result, tmp_path):
    written = report_files.write_report(result, tmp_path / "ensemble")
    names = {p.name for p in written}
    assert names == {"report.json", "report.md", "size_curve.png", "reliability.png", "disagreement.png"}
    assert json.loads((tmp_path / "ensemble" / "report.json").read_text()) == result
    assert not list((tmp_path / "ensemble").glob("*.tmp"))
    md = (tmp_path / "ensemble" / "report.md").read_text()
    for text in ("## Members", "## Combiners", "## Diversity", "Δtop1", "greedy", "![reliability](reliability.png)",
                 result["best_member"]):
        assert text in md
    for png in ("size_curve.png", "reliability.png", "disagreement.png"):
        assert (tmp_path / "ensemble" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
