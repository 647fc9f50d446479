"""Ranking and the written tables of a sweep (pure)."""

from __future__ import annotations

import csv
import io
import math

from cnnjax.sweep.table import PointResult, members, rank, to_csv, to_markdown


def result(index, scores, cv=False, note="", member=True, refit=None):
    name = f"{index:03d}-p"
    return PointResult(index, name, (f"seed={index}",), tuple(scores), (name,), 1.5, cv, refit,
                       (f"{name}/refit" if cv else name) if member else None, note)


def test_rank_is_best_first_ties_in_sweep_order_failures_last():
    results = [result(0, [0.5]), result(1, [math.nan], note="loss became NaN"), result(2, [0.7]), result(3, [0.5])]
    assert [r.index for r in rank(results)] == [2, 0, 3, 1]


def test_cv_score_is_the_fold_mean_with_population_std():
    r = result(0, [0.6, 0.7, 0.8], cv=True)
    assert math.isclose(r.score, 0.7) and math.isclose(r.std, math.sqrt(0.02 / 3))
    assert result(0, [0.6]).std is None


def test_csv_markdown_and_members_follow_the_ranking():
    ranked = rank([result(0, [0.6, 0.8], cv=True, member=False), result(1, [0.9, 0.8], cv=True, refit=0.88)])
    rows = list(csv.DictReader(io.StringIO(to_csv(ranked))))
    assert [(r["rank"], r["point"], r["score"], r["fold_scores"], r["refit_score"]) for r in rows] == [
        ("1", "001-p", "0.8500", "0.9000;0.8000", "0.8800"), ("2", "000-p", "0.7000", "0.6000;0.8000", "")]
    md = to_markdown(ranked, "title").splitlines()
    assert md[0] == "# title" and md[4].startswith("| 1 | 001-p | seed=1 | 0.8500 |") and "note" not in md[2]
    assert members(ranked) == [{"workdir": "001-p/refit", "score": ranked[0].score, "overrides": ["seed=1"],
                                "std": ranked[0].std, "refit_score": 0.88}]  # only points with a refit
