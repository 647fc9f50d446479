"""Smoke tests of benchmarks/train_throughput.py: the programs it times run and the twins are the same size.

The benchmark is only meaningful if the PyTorch model is the cnnjax model, so the parameter counts are
checked against the figures of the issue for all four models; one step of each side proves the timed code
paths work (trained for the two cheapest models; a whole tiny run of the script covers train and inference).
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.models import create_model, model_info, window_pool

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "train_throughput.py"
EXPECTED_PARAMS = {"lenet5": 61_706, "keras_cnn": 889_834, "resnet20": 269_722, "bn_cnn": 653_658}
STEPPED = ("keras_cnn", "lenet5")  # one real training step each; the others' steps cost seconds to compile
TINY_RUN = ["--models", "lenet5", "--cores", "1", "--steps", "1", "--reps", "2", "--warmup", "0",
            "--examples", "64", "--batch", "16"]


def _load_benchmark():
    """The script as a module; benchmarks/ is on sys.path while it loads so that its `torch_twins` (imported
    lazily, when torch is installed) is found later too."""
    spec = importlib.util.spec_from_file_location("train_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        spec.loader.exec_module(module)
        if module.torch_available():
            importlib.import_module("torch_twins")
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return module


bench = _load_benchmark()


@pytest.fixture(scope="module")
def data():
    return bench.synthetic_data(64, seed=0)


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_cnnjax_model_size(name):
    shapes = jax.eval_shape(lambda: create_model(name, 10).init(
        jax.random.PRNGKey(0), jnp.zeros((1, *model_info(name).input_shape))))
    assert bench.param_count(shapes["params"]) == EXPECTED_PARAMS[name]


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_torch_twin_matches_size_and_shapes(name):
    torch = pytest.importorskip("torch")
    from torch_twins import TORCH_LAYERS, param_count, torch_model

    assert sorted(TORCH_LAYERS) == sorted(bench.MODELS) == sorted(EXPECTED_PARAMS)
    model = torch_model(name)
    height, width, channels = model_info(name).input_shape
    assert param_count(model) == EXPECTED_PARAMS[name]
    assert model(torch.zeros(2, channels, height, width)).shape == (2, 10)


@pytest.mark.parametrize("name", STEPPED)
def test_cnnjax_side_trains_one_step(name, data):
    side = bench.cnnjax_side(name, 8, data)
    before = jax.device_get(side.run.state.params)
    side.run(1)
    assert side.params == EXPECTED_PARAMS[name]
    assert int(side.run.state.step) == 1
    after = jax.device_get(side.run.state.params)
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)))


def test_the_xla_backward_side_is_the_same_model_without_the_cpu_path(data):
    """--xla-backward's side: XLA's convolution backward, same parameters and forward (first loss equal)."""
    ours = bench.cnnjax_side("keras_cnn", 8, data)
    xla = bench.cnnjax_side("keras_cnn", 8, data, label="xla-backward", cpu_kernels=False)
    assert (ours.run.model.cpu_kernels, xla.run.model.cpu_kernels) == (True, False)
    assert xla.params == ours.params
    first = [jax.device_get(side.run.fn(side.run.state, side.run.data, side.run.order)[1]) for side in (ours, xla)]
    np.testing.assert_array_equal(first[0]["loss"], first[1]["loss"])


@pytest.mark.torch
@pytest.mark.parametrize("name", STEPPED)
def test_torch_side_trains_one_step(name, data):
    pytest.importorskip("torch")
    side = bench.torch_side(name, 8, data, threads=1)
    before = [p.detach().clone() for p in side.run.model.parameters()]
    side.run(len(data.labels) // 8 + 1)  # crosses an epoch boundary (reshuffle)
    assert side.params == EXPECTED_PARAMS[name]
    assert all(not b.equal(a) for b, a in zip(before, side.run.model.parameters()))


def test_table_and_ratio():
    sides = [bench.Side("cnnjax", 10, lambda n: None), bench.Side("torch", 10, lambda n: None)]
    table = bench.format_table("m", sides, [[200.0, 300.0], [100.0, 100.0]])
    assert "cnnjax 10 | torch 10" in table
    rows = [line for line in table.splitlines() if line.startswith("|")][2:]
    assert [r.split("|")[-2].strip() for r in rows] == ["2.00", "3.00", "2.50"]


def test_rejects_models_without_twin():
    with pytest.raises(SystemExit):
        bench.parse_args(["--models", "resnet56"])


@pytest.mark.parametrize("cores", ["0", "two", "1,999", ","])
def test_rejects_bad_cores(cores, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--cores", cores])
    assert "--cores" in capsys.readouterr().err


def test_cores_settings():
    assert bench.cores_of("all", [2, 5, 7]) == [2, 5, 7]
    assert bench.cores_of("2", [2, 5, 7]) == [2, 5]
    assert bench.parse_args([]).cores == ["1", "all"]


def _assert_tables(out: str) -> None:
    """A training and an inference table for lenet5, with the ratio column when torch ran too."""
    for title in ("### lenet5 training", "### lenet5 inference"):
        table = out[out.index(title):].split("\n\n")[1]
        assert "cnnjax img/s" in table and "| median |" in table
        if bench.torch_available():
            assert "cnnjax/torch" in table


@pytest.mark.slow
def test_script_pins_a_child_per_setting():
    """The real script end to end: a child pinned to one core gets one torch thread and one cnnjax device
    (without pytest's forced device count), and prints both tables. The child's body (`--child`) alone would
    cost as much again, so it is not run in-process too."""
    root = SCRIPT.parents[1]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [env.get("PYTHONPATH")])])
    run = subprocess.run([sys.executable, str(SCRIPT), *TINY_RUN], capture_output=True, text=True, env=env,
                         cwd=root, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "## --cores 1: CPUs [" in run.stdout
    assert "1 intra-op thread(s); cnnjax 1 CPU device(s) (one per core" in run.stdout
    if bench.cpu_runtime.enabled() and bench.cpu_runtime._glibc_has_hugetlb_tunable():
        assert "GLIBC_TUNABLES='glibc.malloc.hugetlb=1'" in run.stdout  # the parent re-executed with it
    _assert_tables(run.stdout)


def _script(name: str):
    """benchmarks/<name>.py as a module (benchmarks/ on sys.path while it loads, as when run as a script)."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(SCRIPT.parent))


def test_conv_weight_grad_finds_each_distinct_convolution_of_a_model():
    """keras_cnn's four convolutions (same, valid, same, valid; 3x3, one group), with their explicit pads."""
    layers = _script("conv_weight_grad").conv_layers("keras_cnn", 4)
    assert [(layer.in_shape, layer.kernel_shape, layer.pads) for layer in layers] == [
        ((4, 28, 28, 1), (3, 3, 1, 32), ((1, 1), (1, 1))), ((4, 28, 28, 32), (3, 3, 32, 32), ((0, 0), (0, 0))),
        ((4, 13, 13, 32), (3, 3, 32, 64), ((1, 1), (1, 1))), ((4, 13, 13, 64), (3, 3, 64, 64), ((0, 0), (0, 0)))]
    assert {(layer.strides, layer.dilation, layer.groups) for layer in layers} == {((1, 1), (1, 1), 1)}


def test_conv_weight_grad_prints_both_timings_and_the_backward_per_layer(capsys):
    assert _script("conv_weight_grad").main(["--models", "lenet5", "--batch", "2", "--reps", "1"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("lenet5 ")]
    assert len(rows) == 2  # LeNet-5's two convolutions
    for row in rows:  # the ratio of the unrounded times, printed to 2 decimals like them
        xla, ours, ratio = map(float, row[-4:-1])
        assert xla > 0 and ours > 0 and ratio == pytest.approx(xla / ours, rel=0.01 / min(xla, ours), abs=0.01)
    assert [row[-1] for row in rows] == ["SAME-padded", "SAME-padded"]  # LeNet-5's VALID 5x5 convolutions


@pytest.mark.parametrize("script", ["conv_weight_grad", "pool_grad"])
@pytest.mark.parametrize("argv, message", [(["--models", "foo"], "--models: unknown foo"),
                                           (["--models", ","], "--models: unknown (none given)"),
                                           (["--reps", "0"], "--batch and --reps must be positive"),
                                           (["--batch", "-1"], "--batch and --reps must be positive")])
def test_layer_benchmarks_refuse_bad_arguments_in_one_line(script, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _script(script).main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err.splitlines()[-1]


def _poolings_of(name: str, monkeypatch) -> set:
    """(kind, input HWC, window, stride, pads) of every pooling model `name` calls, traced at batch 1."""
    calls = set()
    module = importlib.import_module(type(create_model(name)).__module__)
    for kind in ("max", "avg"):
        pool = getattr(window_pool, f"{kind}_pool")
        if getattr(module, f"{kind}_pool", None) is not pool:
            continue

        def record(x, *args, _kind=kind, _pool=pool, **kwargs):
            bound = inspect.signature(_pool).bind(x, *args, **kwargs)
            bound.apply_defaults()
            a = bound.arguments
            stride = a["stride"] or a["window"]
            pads = window_pool.resolve_padding(x.shape[1:3], a["window"], stride, a["padding"],
                                               a.get("ceil_mode", False))
            calls.add((_kind, tuple(x.shape[1:]), a["window"], stride, pads))
            return _pool(x, *args, **kwargs)
        monkeypatch.setattr(module, f"{kind}_pool", record)
    model = create_model(name)
    jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x),
                   jax.ShapeDtypeStruct((1, *model_info(name).input_shape), jnp.float32))
    monkeypatch.undo()
    return calls


def test_pool_grad_times_the_poolings_the_models_really_call(monkeypatch):
    """Every row of the table is a layer of its model, and the CPU benchmark models' rows are all of them."""
    script = _script("pool_grad")
    for name in script.MODELS:
        rows = {(layer.kind, layer.in_hwc, layer.window, layer.stride,
                 window_pool.resolve_padding(layer.in_hwc[:2], layer.window, layer.stride, layer.padding))
                for layer in script.LAYERS if layer.model == name}
        called = _poolings_of(name, monkeypatch)
        assert rows <= called, name
        if name in EXPECTED_PARAMS:
            assert rows == called, name


def test_pool_grad_prints_both_timings_and_equal_max_pool_gradients(capsys):
    assert _script("pool_grad").main(["--models", "keras_cnn,lenet5", "--batch", "2", "--reps", "1"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()
            if line.split()[:1] in (["lenet5"], ["keras_cnn"])]
    assert [row[:2] for row in rows] == [["lenet5", "avg"]] * 2 + [["keras_cnn", "max"]] * 2
    for row in rows:
        xla, ours, ratio, diff = map(float, row[-4:])
        assert xla > 0 and ours > 0 and ratio == pytest.approx(xla / ours, rel=0.01 / min(xla, ours), abs=0.01)
        assert diff == 0.0 or row[1] == "avg"  # max-pool gradients are bit-identical
