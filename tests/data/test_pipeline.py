import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.data import augment
from cnnjax.data.pipeline import DeviceSplit, TrainBatches, eval_batches


def test_each_epoch_visits_every_example_once_in_a_seeded_order():
    batches = TrainBatches(num_examples=103, batch_size=10, seed=7)
    assert batches.steps_per_epoch == 10  # the last partial batch is dropped in training
    epoch0 = np.concatenate([np.asarray(batches.indices(batches.order(0), jnp.asarray(s))) for s in range(10)])
    epoch1 = np.concatenate([np.asarray(batches.indices(batches.order(1), jnp.asarray(s))) for s in range(10, 20)])
    assert len(set(epoch0.tolist())) == 100 and len(set(epoch1.tolist())) == 100
    assert not np.array_equal(epoch0, epoch1)
    fresh = TrainBatches(103, 10, 7)
    again = np.concatenate([np.asarray(fresh.indices(fresh.order(0), jnp.asarray(s))) for s in range(10)])
    assert np.array_equal(epoch0, again)
    other_seed = np.asarray(TrainBatches(103, 10, 8).order(0)[:10])
    assert not np.array_equal(epoch0[:10], other_seed)


def test_random_crop_with_padding_shifts_the_image():
    image = jnp.arange(36, dtype=jnp.uint8).reshape(6, 6, 1) + 1
    crop = augment.random_crop(padding=2)
    outs = [np.asarray(crop(jax.random.PRNGKey(i), image)) for i in range(40)]
    assert all(o.shape == (6, 6, 1) for o in outs)
    assert any(np.array_equal(o, image) for o in outs) and any((o == 0).any() for o in outs)
    for o in outs:  # every output is a translate of the image, zero-filled
        assert set(np.unique(o).tolist()) <= set(range(37))


def test_flip_lr_flips_about_half():
    image = jnp.arange(6, dtype=jnp.uint8).reshape(1, 6, 1)
    flip = augment.flip_lr()
    flipped = [bool(np.array_equal(flip(jax.random.PRNGKey(i), image), image[:, ::-1])) for i in range(200)]
    assert 70 < sum(flipped) < 130


def test_augment_parse_and_batch_apply_are_per_example():
    ops = augment.parse("random_crop(padding=4) | flip_lr")
    assert len(ops) == 2
    images = jnp.ones((8, 28, 28, 1), jnp.uint8)
    out = augment.apply(ops, jax.random.PRNGKey(0), images)
    assert out.shape == images.shape and out.dtype == jnp.uint8
    with pytest.raises(ValueError, match="unknown augmentation 'twirl'"):
        augment.parse("twirl")


def test_batches_are_gathered_from_device_data():
    data = DeviceSplit(jnp.arange(20, dtype=jnp.uint8).reshape(20, 1, 1, 1), jnp.arange(20, dtype=jnp.int32))
    batches = TrainBatches(20, 5, 0)
    images, labels = batches(data, batches.order(0), jnp.asarray(3))
    assert np.array_equal(np.asarray(images).ravel(), np.asarray(labels))


def test_eval_padding_mask():
    num_batches, mask = eval_batches(10, 4)
    assert num_batches == 3 and mask.sum() == 10 and mask.size == 12


def test_batches_do_not_depend_on_64_bit_mode():
    """The order and augmentation are a function of (seed, step) alone, also under jax_enable_x64."""
    batches = TrainBatches(num_examples=50, batch_size=8, seed=3, augment_spec="random_crop(padding=2)|flip_lr")
    data = DeviceSplit(jnp.asarray(np.random.default_rng(0).integers(0, 256, (50, 6, 6, 1), dtype=np.uint8)),
                       jnp.arange(50, dtype=jnp.int32))

    def batch():
        return [np.asarray(x) for x in batches(data, batches.order(1), jnp.asarray(9, jnp.int32))]

    default = batch()
    with jax.enable_x64(True):
        wide = batch()
    assert all(np.array_equal(a, b) for a, b in zip(default, wide))
