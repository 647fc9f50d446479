"""Mixup and CutMix on the global batch: invariants of the mixed images and soft targets, and each alpha
reaching its own op (the bug of torchvision's CutMix reading the mixup alpha, vision#8440)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.data.mixing import Mixer

EPS = float(np.finfo(np.float32).eps)
B, H, W, C = 4, 8, 6, 2
STEPS = 256


def _batch():
    """Distinct float images (no pixel equals its partner's) and B distinct labels, so lam is read off row i."""
    rng = np.random.default_rng(0)
    return jnp.asarray(rng.normal(size=(B, H, W, C)), jnp.float32), jnp.arange(B, dtype=jnp.int32)


@functools.cache
def _compiled():
    """The real `Mixer.__call__` over STEPS global steps, its settings traced: one compile for every test."""
    images, labels = _batch()

    def run(mixup, cutmix, prob, switch):
        mixer = Mixer(B, 0, mixup, cutmix, prob, switch)
        return jax.vmap(lambda step: mixer(images, labels, step))(jnp.arange(STEPS))

    return jax.jit(run)


def _many(mixup: float = 0.0, cutmix: float = 0.0, prob: float = 1.0, switch: float = 0.5):
    """(images, mixed images, targets, lam) of every step: lam is example 0's weight on its own label."""
    mixed, targets = _compiled()(*map(np.float32, (mixup, cutmix, prob, switch)))
    return np.asarray(_batch()[0]), np.asarray(mixed), np.asarray(targets), np.asarray(targets)[:, 0, 0]


def test_targets_sum_to_one_and_lie_between_the_two_one_hots():
    _, _, targets, lam = _many(mixup=1.0, cutmix=1.0)
    assert targets.dtype == np.float32 and targets.shape == (STEPS, B, B)
    np.testing.assert_allclose(targets.sum(-1), 1.0, atol=B * EPS)
    own, partner = np.eye(B), np.roll(np.eye(B), 1, axis=0)  # example i is mixed with example i - 1
    expected = lam[:, None, None] * own + (1 - lam[:, None, None]) * partner
    np.testing.assert_allclose(targets, expected, atol=B * EPS)
    assert ((lam >= 0) & (lam <= 1)).all() and len(np.unique(lam)) > 32  # a real spread of lambdas


def test_mixup_image_is_the_convex_combination_of_the_example_and_its_partner():
    images, mixed, _, lam = _many(mixup=0.4)
    lam32 = lam.astype(np.float32)[:, None, None, None, None]
    expected = lam32 * images + (np.float32(1) - lam32) * np.roll(images, 1, axis=0)
    tol = 2 * EPS * np.abs(images).max()  # one rounding of each product and of the sum
    np.testing.assert_allclose(mixed, expected, rtol=0, atol=tol)
    assert (np.abs(mixed - images) > tol).mean() > 0.9  # every pixel is blended, not a box


def test_cutmix_pastes_exactly_one_rectangle_whose_area_is_one_minus_lambda():
    images, mixed, _, lam = _many(cutmix=1.0)
    partner = np.roll(images, 1, axis=0)
    boxes = 0
    for m, lam_s in zip(mixed, lam):
        pasted = m != images  # the partner's pixels (distinct everywhere from the example's)
        np.testing.assert_array_equal(m[pasted], np.broadcast_to(partner, m.shape)[pasted])
        region = pasted[0, :, :, 0]
        assert (pasted == region[None, :, :, None]).all()  # the same box in every image and channel
        if region.any():
            rows, cols = np.flatnonzero(region.any(1)), np.flatnonzero(region.any(0))
            assert region[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()  # one filled rectangle
            assert region.sum() == len(rows) * len(cols)
            boxes += 1
        np.testing.assert_allclose(region.mean(), 1 - lam_s, atol=EPS)
    assert boxes > 32


def test_each_alpha_reaches_its_own_op_and_only_it():
    # CutMix always chosen (switch 1): the mixup alpha changes nothing, the cutmix alpha the lambdas. A Beta(0.05)
    # lambda is near 0 or 1, and near 1 the box is empty (lam exactly 1); a Beta(20) lambda is near 1/2.
    _, base, _, lam_small = _many(mixup=0.2, cutmix=0.05, switch=1.0)
    np.testing.assert_array_equal(base, _many(mixup=5.0, cutmix=0.05, switch=1.0)[1])
    _, _, _, lam_large = _many(mixup=0.2, cutmix=20.0, switch=1.0)
    assert np.mean(lam_small == 1) > 0.3 and np.mean(lam_large == 1) < 0.05
    # Mixup always chosen (switch 0): the reverse.
    extreme = lambda lam: np.mean(np.abs(lam - 0.5) > 0.4)  # noqa: E731
    _, base, _, lam_small = _many(mixup=0.05, cutmix=1.0, switch=0.0)
    np.testing.assert_array_equal(base, _many(mixup=0.05, cutmix=20.0, switch=0.0)[1])
    _, _, _, lam_large = _many(mixup=20.0, cutmix=1.0, switch=0.0)
    assert extreme(lam_small) > 0.8 and extreme(lam_large) < 0.1


def test_mix_prob_and_switch_prob_choose_per_batch():
    _, _, _, lam = _many(mixup=1.0, prob=0.5)
    unmixed = lam == 1.0  # Beta(1, 1) never gives exactly 1: these batches were left alone
    assert 0.35 < unmixed.mean() < 0.65
    images, mixed, _, _ = _many(mixup=1.0, cutmix=1.0, switch=0.25)
    blended = (mixed != images).mean(axis=(1, 2, 3, 4)) > 0.99  # Mixup changes every pixel, CutMix one box
    assert 0.6 < blended.mean() < 0.9
    _, off, _, lam = _many(mixup=0.0, cutmix=0.0)
    assert (lam == 1).all() and (off == images).all()  # both alphas 0: the batch is untouched


def test_the_config_keys_reach_the_runs_batch_maker():
    """experiment.build -> Experiment.batch_maker (what the training loop compiles) mixes as the config says;
    the batches it leaves unmixed are exactly those of the same run without mixing."""
    from cnnjax.config import base_config
    from cnnjax.data.pipeline import normalize, replicate
    from cnnjax.train import experiment

    config = base_config()
    config.model, config.num_train_examples, config.batch_size, config.num_devices = "mlp", 256, 8, 1
    plain = experiment.build(config)
    config.mixup_alpha, config.cutmix_alpha, config.mix_prob = 0.3, 1.0, 0.75
    mixed = experiment.build(config)
    assert plain.mixer is None
    data = replicate(plain.data.train, plain.mesh)
    order = plain.batches.order(0)

    def batches(exp):  # 32 steps of the run's batch maker
        make_batch = exp.batch_maker(lambda x: normalize(x, exp.data.mean, exp.data.std))
        return map(np.asarray, jax.jit(jax.vmap(lambda s: make_batch(data, order, s)))(jnp.arange(32)))

    (images, labels), (mixed_images, targets) = batches(plain), batches(mixed)
    assert labels.shape == (32, 8) and targets.shape == (32, 8, 10)
    np.testing.assert_allclose(targets.sum(-1), 1.0, atol=10 * EPS)
    unmixed = (targets == np.eye(10)[labels]).all(axis=(1, 2))
    tol = 4 * EPS * np.abs(images).max()  # two programs: their normalisations may round differently
    np.testing.assert_allclose(mixed_images[unmixed], images[unmixed], rtol=0, atol=tol)
    changed = np.abs(mixed_images - images) > tol
    differ = np.abs(np.roll(images, 1, axis=1) - images) > tol  # where an example and its partner differ
    blended = changed.sum(axis=(1, 2, 3, 4)) > 0.95 * differ.sum(axis=(1, 2, 3, 4))  # Mixup: all of them
    boxed = ~unmixed & ~blended
    assert 2 <= unmixed.sum() <= 16 and blended.sum() >= 2 and boxed.sum() >= 2  # mix_prob and both ops reached
