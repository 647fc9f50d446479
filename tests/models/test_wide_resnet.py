"""WRN-28-10 for CIFAR: exact parameter count, forward at 32x32, a train step with dropout."""

from __future__ import annotations

import pytest

from cnnjax.models import create_model
from tests.models.zoo_checks import check_forward, check_train_step, param_count


@pytest.mark.parametrize("num_classes, count", [(10, 36_479_194), (100, 36_536_884)])
def test_param_count(num_classes: int, count: int) -> None:
    if num_classes == 10:  # the registered default: CIFAR-10's classes
        assert param_count(create_model("wrn28_10"), 32) == count
    assert param_count(create_model("wrn28_10", num_classes=num_classes), 32) == count


def test_forward_at_32x32() -> None:
    check_forward(create_model("wrn28_10"), 32)


def test_train_step_with_dropout() -> None:
    loss = check_train_step(create_model("wrn28_10", depth=10, widen_factor=2, dropout=0.3), 32).loss
    assert loss(0) != loss(1)  # the trainer's rng reaches dropout


def test_depth_must_be_6n_plus_4() -> None:
    with pytest.raises(ValueError, match="6n\\+4"):
        param_count(create_model("wrn28_10", depth=27), 32)
