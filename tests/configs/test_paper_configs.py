"""The paper configs (configs/imagenet, configs/cifar10): each loads, validates, builds its model at its input
size and trains two real steps with its own optimizer, schedule, augmentation and model options.

ImageNet configs train on the fake ImageNet archive (tests/data/fake_imagenet.py) prepared as imagenet2012: each
step's batch is made by the streaming pipeline's own per-step host function (decode, the config's random-resized
crop scale and flip) at a reduced crop (the larger of 32 and the model's smallest input). CIFAR configs train on
random 32x32 uint8 images through the in-memory pipeline with the config's augmentation. A batch of 2 per device
keeps the whole file a few minutes of CPU.
"""

from __future__ import annotations

import functools
import pathlib

import jax
import ml_collections
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from cnnjax import sharding
from cnnjax.config import load_config
from cnnjax.data.pipeline import DeviceSplit, TrainBatches, normalize, replicate
from cnnjax.data.records import open_source
from cnnjax.data.sources import Split
from cnnjax.data.stream.inputs import IMAGENET_MEAN, IMAGENET_STD
from cnnjax.data.stream.loader import Crops, TrainElement
from cnnjax.data.stream.plan import TrainPlan
from cnnjax.models import model_info
from cnnjax.reference.recipes import epochs_for_iterations
from cnnjax.train import experiment, optim, parallel
from cnnjax.train.state import create_train_state
from cnnjax.train.step import StepConfig, train_step
from tests.data.fake_imagenet import fake_imagenet  # noqa: F401  (session fixture)

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIGS = sorted(str(p.relative_to(ROOT)) for d in ("imagenet", "cifar10") for p in (ROOT / "configs" / d).glob("*.py"))
FAST_COMPILE = {"xla_backend_optimization_level": 0}  # what is tested is the program, not its speed
# Over 20 s each for the two steps on 2 CPU cores (mostly XLA compiling the train step; 24-54 s measured): in
# the default run their step is traced abstractly (every shape and dtype of the whole update, no compilation);
# `pytest -m heavy` trains them for real.
HEAVY = {"vgg16", "resnet101", "resnet152", "densenet121", "efficientnet_b0", "resnet110"}


def load(path: str, *overrides: str) -> ml_collections.ConfigDict:
    return load_config(str(ROOT / path), overrides)


def test_every_model_family_has_its_paper_config():
    names = {pathlib.Path(p).stem for p in CONFIGS}
    assert {"alexnet", "vgg16", "googlenet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
            "resnet50_large_batch", "densenet121", "mobilenet_v2", "efficientnet_b0", "resnet20", "resnet32",
            "resnet44", "resnet56", "resnet110", "wrn28_10"} <= names


@pytest.mark.parametrize("path", CONFIGS)
def test_config_documents_how_to_run_it_and_what_to_expect(path: str):
    doc = (ROOT / path).read_text().split('"""')[1]
    for field in ("Recipe:", "Command:", "Cluster:", "Hardware:", "Expected:"):
        assert field in doc, f"{path}: docstring has no {field!r} line"
    assert f"python train.py --config {path} --workdir" in doc
    assert f"scripts/launch_slurm.sh {path} runs/" in doc


@pytest.mark.parametrize("path", CONFIGS)
def test_config_builds_its_model_at_its_input_size(path: str):
    config = load(path)  # validates (and traces the model's init abstractly)
    info = model_info(config.model)
    imagenet = "imagenet" in path
    assert config.dataset == ("imagenet2012" if imagenet else "cifar10")
    assert config.input_pipeline == ("stream" if imagenet else "memory")
    if imagenet:  # evaluation: centre crop of crop / crop_pct (224 of 256)
        assert config.stream.crop_size == info.input_shape[0]
        assert config.stream.resize_size == round(info.input_shape[0] / info.crop_pct)
    model = experiment.build_model(config, info.num_classes, info.input_shape)
    x = jax.ShapeDtypeStruct((1, *info.input_shape), np.float32)
    variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x)
    logits = jax.eval_shape(functools.partial(model.apply, train=False), variables, x)
    assert logits.shape == (1, info.num_classes)


def _memory_program(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int], mesh):
    """The in-memory pipeline over random uint8 images: (compiled step, its data, its epoch order)."""
    info = model_info(config.model)
    rng = np.random.default_rng(0)
    data = Split(rng.integers(0, 256, (2 * config.batch_size, *image_shape), dtype=np.uint8),
                 rng.integers(0, info.num_classes, 2 * config.batch_size).astype(np.int32))
    batches = TrainBatches(len(data), config.batch_size, config.seed, config.augment)

    def make_batch(split: DeviceSplit, order: jax.Array, step: jax.Array) -> tuple[jax.Array, jax.Array]:
        images, labels = batches(split, order, step)
        return normalize(images, info.mean, info.std), labels

    return make_batch, replicate(data, mesh), jax.jit(batches.order, out_shardings=NamedSharding(mesh, P()))(0)


def fake_imagenet_batches(config: ml_collections.ConfigDict, data_dir: str, side: int,
                          steps: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The streaming pipeline's host batches of steps 0..steps-1 on the fake archive: the config's crop scale and
    flip, at crop `side` (its eval resize scaled alike)."""
    s = config.stream
    source = open_source(config.dataset, s.train_split, data_dir)
    crops = Crops(side, round(side * s.resize_size / s.crop_size), s.min_scale, s.flip, s.ten_crop, 3)
    element = TrainElement(source, TrainPlan(len(source), config.batch_size, config.seed), crops)
    return [(b["image"], b["label"]) for b in map(element, range(steps))]


def train_steps(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int], steps: int = 2,
                streamed: list[tuple[np.ndarray, np.ndarray]] | None = None):
    """The library's sharded train step on `streamed` host batches (the streaming path) or, if None, on random
    uint8 data through the in-memory pipeline: returns (initial params, final state, metrics)."""
    info = model_info(config.model)
    mesh = sharding.make_mesh(config.num_devices)
    steps_per_epoch = 2 if streamed is None else steps
    schedule = optim.make_schedule(config, steps_per_epoch)
    tx = optim.make_optimizer(config, schedule)
    model = experiment.build_model(config, info.num_classes, image_shape)
    step_fn = functools.partial(train_step, model=model, tx=tx, schedule=schedule,
                                cfg=StepConfig.from_config(config))
    init = jax.jit(lambda: create_train_state(model, tx, image_shape, config.seed))
    state = sharding.replicate_tree(init.lower().compile(FAST_COMPILE)(), mesh)
    first = jax.tree.map(np.asarray, state.params)
    if streamed is None:
        make_batch, data, order = _memory_program(config, image_shape, mesh)
        feeds = [data] * steps
    else:  # as cnnjax.data.stream.inputs: the host batch arrives split over the mesh, normalised on device
        make_batch = lambda batch, _order, _step: (normalize(batch[0], IMAGENET_MEAN, IMAGENET_STD), batch[1])  # noqa: E731
        split = NamedSharding(mesh, P(sharding.AXIS))
        feeds = [tuple(jax.device_put(a, split) for a in batch) for batch in streamed[:steps]]
        order = None
    step = parallel.compile_train_step(step_fn, make_batch, mesh).lower(state, feeds[0], order).compile(
        FAST_COMPILE)
    metrics = []
    for feed in feeds:
        state, m = step(state, feed, order)
        metrics.append(jax.tree.map(float, m))
    return first, state, metrics


def reduced_shape(config: ml_collections.ConfigDict) -> tuple[int, int, int]:
    """CIFAR at 32x32; ImageNet models at the larger of 32 and their smallest input (CPU cost)."""
    info = model_info(config.model)
    side = min(info.input_shape[0], max(32, info.min_input_size))
    return side, side, info.input_shape[2]


@pytest.mark.parametrize("path", [p for p in CONFIGS if pathlib.Path(p).stem in HEAVY])
def test_heavy_config_traces_its_train_step(path: str):
    """The whole update of a heavy config (loss, gradients, optimizer, schedule, BN statistics) at its reduced
    input, abstractly: shapes and dtypes of the new state equal the old, without XLA compiling it (on one
    device: BatchNorm statistics are not synchronised across devices in this trace)."""
    devices = jax.device_count()
    config = load(path, f"batch_size={2 * devices}", "bn_sync=false")
    info, shape = model_info(config.model), reduced_shape(config)
    schedule = optim.make_schedule(config, 2)
    tx = optim.make_optimizer(config, schedule)
    model = experiment.build_model(config, info.num_classes, shape)
    state = jax.eval_shape(lambda: create_train_state(model, tx, shape, config.seed))
    images = jax.ShapeDtypeStruct((config.batch_size, *shape), np.float32)
    labels = jax.ShapeDtypeStruct((config.batch_size,), np.int32)
    step_fn = functools.partial(train_step, model=model, tx=tx, schedule=schedule, cfg=StepConfig.from_config(config))
    new_state, metrics = jax.eval_shape(lambda st, x, y: step_fn(st, x, y, axis_name=None), state, images, labels)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    assert all(a.shape == b.shape and a.dtype == b.dtype
               for a, b in zip(jax.tree.leaves(new_state), jax.tree.leaves(state)))
    assert metrics["loss"].shape == ()


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.heavy) if pathlib.Path(p).stem in HEAVY else p
                                  for p in CONFIGS])
def test_config_trains_two_steps(path: str, request: pytest.FixtureRequest):
    devices = jax.device_count()
    config = load(path, f"batch_size={2 * devices}")
    shape = reduced_shape(config)
    streamed = None
    if config.input_pipeline == "stream":
        streamed = fake_imagenet_batches(config, request.getfixturevalue("fake_imagenet"), shape[0], steps=2)
        assert all(images.shape == (config.batch_size, *shape) for images, _ in streamed)
    first, state, metrics = train_steps(config, shape, streamed=streamed)
    assert int(state.step) == 2
    assert all(np.isfinite(m["loss"]) and m["nonfinite"] == 0 for m in metrics), metrics
    changed = jax.tree.leaves(jax.tree.map(lambda a, b: not np.array_equal(a, np.asarray(b)), first, state.params))
    assert any(changed), "two steps left every parameter unchanged"


def lr_at(config: ml_collections.ConfigDict, epoch: float, steps_per_epoch: int = 100) -> float:
    return float(optim.make_schedule(config, steps_per_epoch)(int(epoch * steps_per_epoch)))


def test_torchvision_resnet_recipe_steps_at_30_and_60():
    config = load("configs/imagenet/resnet50.py")
    assert (config.batch_size, config.num_epochs, config.weight_decay) == (256, 90, 1e-4)
    assert [lr_at(config, e) for e in (0, 29.9, 30, 60, 89)] == pytest.approx([0.1, 0.1, 0.01, 0.001, 0.001])


def test_large_batch_resnet50_scales_linearly_and_warms_up():
    config = load("configs/imagenet/resnet50_large_batch.py")
    assert optim.base_learning_rate(config) == pytest.approx(3.2)
    assert lr_at(config, 2.5) == pytest.approx(1.6)
    assert [lr_at(config, e) for e in (5, 29, 30, 60, 80)] == pytest.approx([3.2, 3.2, 0.32, 0.032, 0.0032])


def test_cifar_resnet_steps_at_the_papers_iterations():
    config = load("configs/cifar10/resnet56.py")
    steps = 50_000 // config.batch_size
    assert (steps, config.lr_boundaries_epochs, config.num_epochs) == (390, (82, 123), 164)
    assert epochs_for_iterations(64_000, 128, 50_000) * steps == pytest.approx(64_000, rel=0.001)
    assert config.model_overrides.shortcut == "A" and config.augment == "random_crop(padding=4)|flip_lr"


def test_wide_resnet_divides_by_5():
    config = load("configs/cifar10/wrn28_10.py")
    assert [lr_at(config, e) for e in (0, 60, 120, 160)] == pytest.approx([0.1, 0.02, 0.004, 0.0008])
    assert config.optimizer == "nesterov" and config.model_overrides.dropout == 0.3


def test_googlenet_trains_its_auxiliary_heads():
    config = load("configs/imagenet/googlenet.py")
    assert config.model_overrides.aux_logits and config.aux_loss_weight == 0.3
