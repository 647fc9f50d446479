"""Test-session set-up: 4 CPU devices (set before JAX is imported) so data parallelism runs for real, and one
persistent XLA compilation cache for the session.

Why the cache: the suite runs train.py/eval.py in ~60 subprocesses and builds the same small programs in many
tests; each process compiled them afresh (~100 one-op programs of a model's op-by-op init alone: 5-6 s of a
13 s train.py run). JAX's compilation cache stores each compiled executable under a key of its HLO, compile
options, devices and versions, so a hit is the same executable and the code under test runs unchanged. The
directory is new for each session (and inherited by the subprocesses), so no result leaks between sessions.
"""

import atexit
import os
import shutil
import tempfile

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="cnnjax-tests-xla-cache-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")  # the many small programs too

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def fashion_mnist():
    """The real Fashion-MNIST (prepared into TFDS from the Debian package on first use)."""
    from cnnjax.data import load_datasets

    return load_datasets("fashion_mnist", validation_size=5000, validation_seed=0)


def pytest_report_header(config):
    return f"jax {jax.__version__}, devices: {jax.device_count()} x {jax.default_backend()}"


@pytest.fixture(scope="session")
def lenet5_workdir(tmp_path_factory):
    """A ReLU lenet5 trained one epoch (4 steps) on Fashion-MNIST classes 0-4 by the real loop: a checkpoint
    for fine-tuning, features and visualisation tests (shared: training it is the expensive part)."""
    from cnnjax.config import base_config
    from cnnjax.train.loop import train_and_evaluate

    c = base_config()
    c.model, c.class_subset, c.model_overrides.act = "lenet5", (0, 1, 2, 3, 4), "relu"
    c.num_train_examples, c.validation_size, c.batch_size, c.num_epochs = 256, 128, 32, 1
    c.progress_bar, c.log_every_steps, c.num_devices = False, 1, 1
    workdir = tmp_path_factory.mktemp("lenet5") / "run"
    train_and_evaluate(c, workdir)
    return workdir
