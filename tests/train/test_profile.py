"""`config.profile_steps`: the spec's one-line errors, and a run that writes a TensorBoard-readable trace."""

from __future__ import annotations

import pytest

from cnnjax.config import ConfigError, base_config, parse_profile_steps, validate
from cnnjax.train import run_info


@pytest.mark.parametrize("spec", ["10", "5:5", "6:2", "-1:3", "a:b", "1:2:3", ":4"])
def test_a_bad_spec_is_a_one_line_config_error(spec):
    config = base_config()
    config.profile_steps = spec
    with pytest.raises(ConfigError, match=r"^profile_steps must look like 'START:STOP'") as err:
        validate(config)
    assert "\n" not in str(err.value)


def test_a_spec_is_a_half_open_window_and_resumable():
    assert parse_profile_steps("") is None and parse_profile_steps("10:15") == (10, 15)
    assert parse_profile_steps(" 0:1 ") == (0, 1)
    assert "profile_steps" in run_info.RESUMABLE_KEYS


def test_the_profiler_traces_only_its_window(tmp_path):
    import jax
    import jax.numpy as jnp

    from cnnjax.train.profiling import StepProfiler

    f, x, started = jax.jit(lambda v: v @ v), jnp.eye(8), []
    with StepProfiler("2:4", tmp_path) as profiler:
        for step in range(6):
            profiler.before_step(step)
            started.append(profiler.active)
            x = f(x)
            profiler.after_step(step, x)
    assert started == [False, False, True, True, False, False]
    assert len(list((tmp_path / "profile" / "plugins" / "profile").glob("*/*.xplane.pb"))) == 1


@pytest.mark.slow
def test_a_run_with_profile_steps_writes_a_trace(tmp_path):
    from tests.train.test_train_script import run, train_cmd

    result = run(train_cmd(tmp_path, "--config.num_train_examples=480", "--config.num_epochs=1",
                           "--config.profile_steps=3:5"))
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "profile" / "plugins" / "profile").iterdir())
    assert len(runs) == 1
    assert list(runs[0].glob("*.xplane.pb"))  # what TensorBoard's profile plugin reads
    assert (tmp_path / "checkpoints" / "10").is_dir()  # the run went on to its end
