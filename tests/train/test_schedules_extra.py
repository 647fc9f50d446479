"""The one-cycle and inverse-time schedules and the plateau factor, built from config keys by make_schedule."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.config import ConfigError, base_config, validate
from cnnjax.train.optim import make_schedule
from cnnjax.train.state import PlateauState

EPS = float(np.finfo(np.float32).eps)
# optax evaluates a schedule value in float32 with about ten rounded operations (interpolation, cosine).
TOL = 10 * EPS


def _config(**kw):
    c = base_config()
    for k, v in kw.items():
        c[k] = v
    return c


@pytest.mark.parametrize("shape", ["cosine", "linear"])
def test_one_cycle_rises_to_the_peak_then_anneals_to_the_final_fraction(shape):
    lr, div, final_div, spe, epochs = 0.4, 20.0, 100.0, 10, 10
    s = make_schedule(_config(schedule="one_cycle", learning_rate=lr, num_epochs=epochs, one_cycle_pct_start=0.25,
                              one_cycle_div_factor=div, one_cycle_final_div_factor=final_div,
                              one_cycle_shape=shape), spe)
    total = epochs * spe
    lrs = np.asarray(jax.jit(jax.vmap(s))(jnp.arange(total + 1)), np.float64)
    peak = int(0.25 * total)
    assert lrs[0] == pytest.approx(lr / div, rel=TOL)
    assert lrs[peak] == pytest.approx(lr, rel=TOL) and lrs.max() == pytest.approx(lr, rel=TOL)
    assert np.all(np.diff(lrs[:peak + 1]) > 0)  # warm-up to the peak
    assert np.all(np.diff(lrs[peak:]) <= 0)  # then anneal
    assert lrs[-1] == pytest.approx(lr / (div * final_div), rel=TOL)


def test_inverse_time_is_keras_legacy_decay():
    lr, decay = 1e-4, 1e-2
    s = make_schedule(_config(schedule="inverse_time", learning_rate=lr, inverse_time_decay=decay), 10)
    for t in (0, 1, 50, 999):
        assert float(s(t)) == pytest.approx(lr / (1 + decay * t), rel=TOL)


@pytest.mark.parametrize("factor", [0.5, 0.2])  # seed 004: "divide the LR by 2 (or by 5)"
def test_plateau_multiplies_by_the_configured_factor_after_patience_epochs(factor):
    validate(_config(schedule="plateau", lr_decay_factor=factor))
    p, scales = PlateauState.create(), []
    for metric in (0.50, 0.60, 0.60, 0.60, 0.60, 0.60, 0.60):  # stops improving after the second epoch
        p = p.update(metric, patience=2, factor=factor, min_delta=1e-4)
        scales.append(float(p.scale))
    assert scales == pytest.approx([1, 1, 1, 1, factor, factor, factor], rel=EPS)


@pytest.mark.parametrize("keys, message", [
    ({"schedule": "plateau", "lr_decay_factor": 2.0}, "0.5 divides by 2, 0.2 by 5"),
    ({"schedule": "one_cycle", "warmup_epochs": 1.0}, "warmup_epochs=0"),
    ({"schedule": "one_cycle", "one_cycle_pct_start": 1.0}, "one_cycle_pct_start must be in"),
    ({"schedule": "one_cycle", "one_cycle_div_factor": 0.5}, "one_cycle_div_factor must be >= 1"),
    ({"schedule": "one_cycle", "one_cycle_shape": "triangle"}, "'cosine' or 'linear'"),
    ({"inverse_time_decay": 1e-6}, "needs --config.schedule=inverse_time"),
])
def test_schedule_keys_are_validated(keys, message):
    with pytest.raises(ConfigError, match=message):
        validate(_config(**keys))
