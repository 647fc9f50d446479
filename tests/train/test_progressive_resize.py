"""Progressive resizing: the per-epoch sizes a spec gives, the batch maker resizing to them, and the config
refusing models whose classifier depends on the image size."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.config import ConfigError, base_config, validate
from cnnjax.data.pipeline import DeviceSplit, TrainBatches
from cnnjax.data.resize import MAX_SIZES, ResizeSpecError, sizes_per_epoch

EPS = float(np.finfo(np.float32).eps)
TINY_RESNET = {"depth": 8, "widths": (4, 8, 8)}  # resnet20's family at its smallest: global average pooling


def test_a_ramp_starts_small_ends_at_the_final_size_with_few_distinct_sizes():
    sizes = sizes_per_epoch("8:224", 30)
    assert sizes[0] == 8 and sizes[-1] == 224 and len(sizes) == 30
    assert list(sizes) == sorted(sizes) and len(set(sizes)) <= MAX_SIZES
    assert sizes_per_epoch("0:16,3:22,6:28", 8) == (16, 16, 16, 22, 22, 22, 28, 28)
    assert sizes_per_epoch("", 8) == ()


@pytest.mark.parametrize("spec, message", [
    ("16-28", "does not parse"), ("1:16,0:28", "must start at 0 and increase"),
    (",".join(f"{e}:{10 + e}" for e in range(MAX_SIZES + 1)), "distinct sizes"),
])
def test_bad_specs_are_refused(spec, message):
    with pytest.raises(ResizeSpecError, match=message):
        sizes_per_epoch(spec, 20)


def test_the_batch_of_an_early_step_is_small_and_of_a_late_step_full_size():
    n, batch, epochs = 64, 16, 4
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8)
    images[:, :, :, :] = images[:, :1, :1, :]  # each image one constant grey level: resizing must keep it
    data = DeviceSplit(jnp.asarray(images), jnp.arange(n, dtype=jnp.int32))
    batches = TrainBatches(n, batch, seed=0, augment_spec="flip_lr", sizes=sizes_per_epoch("14:28", epochs))
    spe = batches.steps_per_epoch
    first, last = 0, epochs * spe - 1
    assert (batches.size_at(first), batches.size_at(last)) == (14, 28)
    make = jax.jit(batches, static_argnums=3)
    small, labels = make(data, batches.order(0), jnp.int32(first), batches.size_at(first))
    full, _ = make(data, batches.order(epochs - 1), jnp.int32(last), batches.size_at(last))
    assert small.shape == (batch, 14, 14, 1) and full.shape == (batch, 28, 28, 1) and small.dtype == jnp.uint8
    np.testing.assert_array_equal(np.asarray(small), images[np.asarray(labels)][:, :14, :14])
    plain = TrainBatches(n, batch, seed=0, augment_spec="flip_lr")
    assert plain.size_at(first) is None and jax.eval_shape(plain, data, plain.order(0), first)[0].shape[1] == 28


def _config(**kw):
    c = base_config()
    for k, v in kw.items():
        c[k] = v
    return c


def test_fixed_size_classifiers_are_refused_and_global_pooling_models_accepted():
    with pytest.raises(ConfigError, match="fixed-size classifier"):
        validate(_config(model="keras_cnn", progressive_resize="14:28"))  # flatten -> Dense 512
    with pytest.raises(ConfigError, match="minimum input"):
        validate(_config(model="lenet5", progressive_resize="14:28"))
    config = _config(model="resnet20", progressive_resize="14:28")
    config.model_overrides.update(TINY_RESNET)
    validate(config)
    with pytest.raises(ConfigError, match="in-memory pipeline"):
        validate(_config(model="resnet20", progressive_resize="14:28", input_pipeline="stream"))


def test_the_loop_compiles_a_step_per_size_and_runs_the_configured_step():
    """The loop's programs (`loop._compile`) for a real experiment: the step at an early and a late step trains
    on that epoch's size, with max_norm from the config in the compiled step."""
    from cnnjax.train import experiment, loop
    from cnnjax.train.regularizers import incoming_norms

    config = _config(model="resnet20", num_train_examples=64, batch_size=32, validation_size=100, num_epochs=2,
                     num_devices=1, progressive_resize="0:14,1:28", max_norm=0.5,
                     optimizer="sgd", learning_rate=0.05)
    config.model_overrides.update(TINY_RESNET)
    validate(config)
    exp = experiment.build(config)
    state = _random_state(exp)
    programs = loop._compile(exp, state, 0)
    last = exp.total_steps - 1
    small, full = programs.step_at(0), programs.step_at(last)
    assert small is not full and programs.step_at(1) is small  # one program per size, reused within it
    assert ",14,14,1]" in small.as_text() and ",14,14,1]" not in full.as_text()  # the resized batch's shape
    state, metrics = small(state, programs.train_data, programs.epoch_order(0))
    assert int(state.step) == 1 and bool(jnp.isfinite(metrics["loss"]))
    kernels = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(state.params)
               if getattr(path[-1], "key", None) == "kernel"]
    assert max(float(jnp.max(incoming_norms(k))) for k in kernels) <= 0.5 * (1 + 4 * EPS)


def _random_state(exp):
    """A train state of the experiment's structure with random positive values: compiling the model's own
    initialisers costs seconds, and this test is about the programs, not the initial weights."""
    from cnnjax import sharding
    from cnnjax.train.state import PlateauState, TrainState

    shape = (1, *exp.data.meta.image_shape)
    abstract = jax.eval_shape(lambda: exp.model.init({"params": jax.random.key(0), "dropout": jax.random.key(0)},
                                                     jnp.zeros(shape), train=False))
    rng = np.random.default_rng(0)
    variables = jax.tree.map(lambda s: jnp.asarray(np.abs(rng.normal(size=s.shape)) * 0.5, s.dtype), abstract)
    state = TrainState(step=jnp.asarray(0, jnp.int32), params=variables["params"],
                       batch_stats=variables["batch_stats"], opt_state=exp.tx.init(variables["params"]),
                       rng=jax.random.PRNGKey(0), plateau=PlateauState.create())
    return sharding.replicate_tree(state, exp.mesh)


def test_what_the_data_and_devices_decide_is_checked_when_the_experiment_is_built():
    from cnnjax.train import experiment

    config = _config(model="resnet20", num_train_examples=64, batch_size=32, validation_size=100, num_epochs=2,
                     progressive_resize="0:14,1:32")
    config.model_overrides.update(TINY_RESNET)
    validate(config)  # the model runs at both sizes; only the data says the images are 28x28
    with pytest.raises(ConfigError, match="end the ramp at 28"):
        experiment.build(config)
    config.progressive_resize, config.batch_size, config.grad_accum_steps, config.num_devices = "", 36, 2, 4
    validate(config)
    with pytest.raises(ConfigError, match="9 per device, which does not split into grad_accum_steps=2"):
        experiment.build(config)
