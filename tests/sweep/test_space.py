"""Sweep points: --grid parsing, the cartesian product, random draws and directory names (pure, no JAX)."""

from __future__ import annotations

import pytest

from cnnjax.sweep.space import (SweepError, grid_points, parse_axes, parse_axis, point_name, random_points, slug,
                                split_values)


def test_grid_is_the_cartesian_product_first_axis_slowest():
    axes = parse_axes(["learning_rate=1e-3,3e-3", "model_overrides.act=relu,tanh"])
    assert grid_points(axes) == [("learning_rate=1e-3", "model_overrides.act=relu"),
                                 ("learning_rate=1e-3", "model_overrides.act=tanh"),
                                 ("learning_rate=3e-3", "model_overrides.act=relu"),
                                 ("learning_rate=3e-3", "model_overrides.act=tanh")]


def test_values_keep_brackets_and_quotes_whole():
    assert split_values("(30,60),(10,20)") == ["(30,60)", "(10,20)"]
    assert parse_axis("config.augment='flip_lr,x',''").values == ("'flip_lr,x'", "''")
    assert parse_axis("lr_boundaries_epochs=(30,60), (10,)").values == ("(30,60)", "(10,)")


def test_random_draws_distinct_grid_points_reproducibly():
    axes = parse_axes(["learning_rate=1e-3,3e-3,1e-2", "seed=0,1"])
    draw = random_points(axes, 4, seed=7)
    assert len(set(draw)) == 4 and set(draw) <= set(grid_points(axes))
    assert random_points(axes, 4, seed=7) == draw
    assert sorted(random_points(axes, 6, seed=1)) == sorted(grid_points(axes))  # all of it, in another order


def test_random_samples_ranges_within_their_bounds():
    axes = parse_axes(["learning_rate=loguniform(1e-4,1e-2)", "num_epochs=uniform(1,3)",
                       "model_overrides.act=relu,tanh"])
    points = random_points(axes, 50, seed=0)
    rates = [float(p[0].split("=")[1]) for p in points]
    epochs = {p[1] for p in points}
    assert all(1e-4 <= r <= 1e-2 for r in rates) and min(rates) < 1e-3 < max(rates)  # spread over the decades
    assert epochs <= {"num_epochs=1", "num_epochs=2", "num_epochs=3"} and len(epochs) > 1  # integer bounds: ints
    assert {p[2] for p in points} == {"model_overrides.act=relu", "model_overrides.act=tanh"}


def test_directory_names_are_short_and_shell_safe():
    point = ("learning_rate=1e-3", "model_overrides.act=relu", "augment='flip_lr|x'")
    assert slug(point) == "lr-1e-3_act-relu_augment-fliplrx"
    assert point_name(12, point).startswith("012-") and len(point_name(12, point * 5)) <= 44


@pytest.mark.parametrize("texts, fixed, message", [
    (["learning_rate"], (), "must look like key=value1,value2"),
    (["=1,2"], (), "must look like"),
    (["learning_rate="], (), "must look like"),
    (["learning_rate=1e-3,,3e-3"], (), "empty value"),
    (["learning_rate=1e-3,1e-3"], (), "more than once"),
    (["learning_rate=1e-3", "learning_rate=3e-3"], (), "given twice"),
    (["learning_rate=1e-3,3e-3"], ("learning_rate",), "both swept"),
    (["learning_rate=loguniform(0,1)"], (), "low > 0"),
    (["learning_rate=uniform(2,1)"], (), "low < high"),
    (["learning_rate=loguniform(a,1)"], (), "must be numbers"),
    ([], (), "at least one --grid"),
])
def test_malformed_grids_are_one_line_errors(texts, fixed, message):
    with pytest.raises(SweepError, match=message) as err:
        parse_axes(texts, fixed)
    assert "\n" not in str(err.value)


def test_ranges_need_random_and_random_cannot_exceed_the_grid():
    with pytest.raises(SweepError, match="sample it with --random"):
        grid_points(parse_axes(["learning_rate=loguniform(1e-4,1e-2)"]))
    with pytest.raises(SweepError, match="more points than the grid's 2"):
        random_points(parse_axes(["learning_rate=1e-3,3e-3"]), 3, seed=0)
    with pytest.raises(SweepError, match="set by the sweep itself"):
        parse_axes(["cv_fold=0,1"], reserved=("cv_folds", "cv_fold"))
