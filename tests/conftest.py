"""Test-session set-up: 4 CPU devices (set before JAX is imported) so data parallelism runs for real."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def fashion_mnist():
    """The real Fashion-MNIST (prepared into TFDS from the Debian package on first use)."""
    from cnnjax.data import load_datasets

    return load_datasets("fashion_mnist", validation_size=5000, validation_seed=0)


def pytest_report_header(config):
    return f"jax {jax.__version__}, devices: {jax.device_count()} x {jax.default_backend()}"
