"""`cnnjax visualize`: filter and feature-map grids of a trained lenet5, pixel-exact sizes; one-line errors."""

from __future__ import annotations

import shutil

import matplotlib.image
import numpy as np

from cnnjax import visualize
from cnnjax.cli import main


def _size(rows: int, cols: int, tile_h: int, tile_w: int) -> tuple[int, int]:
    zoom, gap = visualize.ZOOM, visualize.GAP
    return rows * tile_h * zoom + (rows - 1) * gap, cols * tile_w * zoom + (cols - 1) * gap


def test_filters_and_feature_maps_of_a_trained_lenet5(lenet5_workdir, tmp_path, capsys):
    assert main(["visualize", "--workdir", str(lenet5_workdir), "--out", str(tmp_path / "vis")]) == 0
    names = sorted(p.name for p in (tmp_path / "vis").iterdir())
    assert names == ["feature_maps_0_Conv_0.png", "feature_maps_1_Conv_1.png", "filters.png", "input.png"]
    assert capsys.readouterr().out.count("wrote") == 4
    filters = matplotlib.image.imread(tmp_path / "vis" / "filters.png")
    assert filters.shape[:2] == _size(2, 3, 5, 5)  # lenet5's 6 filters of 5x5 in a 2 x 3 grid
    first = matplotlib.image.imread(tmp_path / "vis" / "feature_maps_0_Conv_0.png")
    assert first.shape[:2] == _size(2, 3, 28, 28)  # 6 channels, "same" padding on 28x28
    second = matplotlib.image.imread(tmp_path / "vis" / "feature_maps_1_Conv_1.png")
    assert second.shape[:2] == _size(4, 4, 10, 10)  # 16 channels of 10x10


def test_each_tile_is_normalised_on_its_own():
    tiles = np.stack([np.arange(4.0).reshape(2, 2), 100 + 10 * np.arange(4.0).reshape(2, 2), np.full((2, 2), 3.0)])
    out = visualize.normalise_each(tiles)
    np.testing.assert_allclose(out[0], out[1])
    assert out[0].min() == 0 and out[0].max() == 1 and not out[2].any()
    assert visualize.grid_shape(6) == (2, 3) and visualize.grid_shape(16) == (4, 4) and visualize.grid_shape(1) == (1, 1)


def test_a_workdir_without_checkpoints_is_a_one_line_error(lenet5_workdir, tmp_path, capsys):
    (tmp_path / "run").mkdir()
    shutil.copy(lenet5_workdir / "run.json", tmp_path / "run" / "run.json")
    assert main(["visualize", "--workdir", str(tmp_path / "run"), "--out", str(tmp_path / "vis")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no checkpoints" in err and len(err.splitlines()) == 1
