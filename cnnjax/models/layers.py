"""Layer factories shared by every architecture.

Blocks never construct `nn.Conv`/`nn.BatchNorm`/activations themselves: they receive the partials of
`Ops`, so initialisation, activation, dtype and normalisation (kind, momentum, epsilon, cross-device axis)
are configured once, on the model, and can be overridden for any model (`act=`, `init=`, `norm=`,
`bn_axis_name=`). The regularisers `spatial_dropout=` and `drop_path=` are model options too; a model
lists the ones its layers apply in `applied_options()` and rejects the others instead of ignoring them.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnnjax.models import cpu_conv
from cnnjax.models.activations import Activation, check_activation
from cnnjax.models.initializers import initializer
from cnnjax.models.norms import NORMS, norm_factory

ModuleFactory = Callable[..., nn.Module]


class SpatialDropout(nn.Dropout):
    """Dropout of whole feature maps (Tompson et al. 2015): one draw per example and channel. A class of its
    own so its automatic names (SpatialDropout_0, ...) leave those of a model's other Dropout layers, and so
    their masks (the 'dropout' rng is folded with the module path), as they were without it."""

    broadcast_dims: Sequence[int] = (1, 2)


@dataclasses.dataclass(frozen=True)
class Ops:
    """Partials a block builds its layers from. `norm` already knows train/eval mode."""

    conv: ModuleFactory
    dense: ModuleFactory
    norm: ModuleFactory
    act: ModuleFactory
    dropout: ModuleFactory
    spatial_dropout: ModuleFactory  # drops whole feature maps (Tompson et al. 2015); identity at rate 0
    train: bool


class Classifier(nn.Module):
    """Base of every registered model: the options any model accepts.

    Subclasses redefine a field to change its default (e.g. `weight_init: str = "he_fan_out"`), implement
    `__call__(self, x, train=False) -> logits`, and build layers through `self.ops(train)`.
    Auxiliary heads (GoogLeNet, Inception-v3) `self.sow("aux_logits", name, logits)` in training; the
    train step adds them to the loss, evaluation ignores them.
    """

    num_classes: int = 1000
    act: str = "relu"
    act_slope: float = 0.01  # leaky_relu slope / PReLU initial slope
    weight_init: str = "he"
    bn_momentum: float = 0.9  # running = momentum * running + (1 - momentum) * batch (torch 0.1)
    bn_epsilon: float = 1e-5
    bn_axis_name: str | None = None  # mesh axis to synchronise BatchNorm statistics over
    dtype: Any = jnp.float32  # computation dtype; parameters stay float32
    norm: str = "batch"  # batch | batch_renorm | group | layer: the layer wherever the model normalises
    norm_groups: int = 32  # norm=group: groups per layer (else the largest divisor of the channels below it)
    renorm_r_max: float = 3.0  # norm=batch_renorm: clip of r (1 and d_max=0: BatchNorm)
    renorm_d_max: float = 5.0  # norm=batch_renorm: clip of d
    spatial_dropout: float = 0.0  # rate of dropping whole feature maps after the convolutions' activations
    drop_path: float = 0.0  # stochastic depth: the last residual block's drop rate, linear from the first
    cpu_kernels: bool = True  # on CPU, a faster convolution backward where measured to win (cpu_conv.py)

    def applied_options(self) -> frozenset[str]:
        """Which of `norm`, `spatial_dropout`, `drop_path` this model's layers apply; the default is a model
        that normalises with `ops.norm` and has neither hook. Families override it."""
        return frozenset({"norm"})

    def not_applied_reason(self, option: str) -> str:
        """Why the model rejects `option`, for its error; a family with a special case overrides it."""
        return NOT_APPLIED[option]

    def check_options(self) -> None:
        """One-line errors for a value out of range or an option the model would silently ignore."""
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        applied = self.applied_options()
        for option, off in (("norm", "batch"), ("spatial_dropout", 0.0), ("drop_path", 0.0)):
            if option not in applied and getattr(self, option) != off:
                reason = self.not_applied_reason(option)
                raise ValueError(f"{type(self).__name__} does not apply {option}= ({reason}): "
                                 f"remove model_overrides.{option}")
        for option in ("spatial_dropout", "drop_path"):
            rate = getattr(self, option)
            if not _is_number(rate) or not 0.0 <= rate <= 1.0:
                raise ValueError(f"{option} is a rate in [0, 1], got {rate!r}")
        if not isinstance(self.cpu_kernels, bool):
            raise ValueError(f"cpu_kernels is true or false, got {self.cpu_kernels!r}")
        if not _is_number(self.norm_groups, int) or self.norm_groups < 1:
            raise ValueError(f"norm_groups is a positive integer, e.g. 32; got {self.norm_groups!r}")
        if not (_is_number(self.renorm_r_max) and _is_number(self.renorm_d_max)
                and self.renorm_r_max >= 1.0 and self.renorm_d_max >= 0.0):
            raise ValueError(f"batch_renorm needs renorm_r_max >= 1 and renorm_d_max >= 0, "
                             f"got {self.renorm_r_max!r} and {self.renorm_d_max!r}")

    def ops(self, train: bool) -> Ops:
        check_activation(self.act)
        self.check_options()
        kernel_init = initializer(self.weight_init)
        return Ops(
            conv=functools.partial(nn.Conv, kernel_init=kernel_init, use_bias=False, dtype=self.dtype,
                                   conv_general_dilated=cpu_conv.conv_general_dilated if self.cpu_kernels else None),
            dense=functools.partial(nn.Dense, kernel_init=kernel_init, dtype=self.dtype),
            norm=norm_factory(self.norm, train, momentum=self.bn_momentum, epsilon=self.bn_epsilon,
                              axis_name=self.bn_axis_name, dtype=self.dtype, groups=self.norm_groups,
                              r_max=self.renorm_r_max, d_max=self.renorm_d_max),
            act=functools.partial(Activation, kind=self.act, train=train, slope=self.act_slope),
            dropout=functools.partial(nn.Dropout, deterministic=not train),
            spatial_dropout=functools.partial(SpatialDropout, self.spatial_dropout, deterministic=not train),
            train=train,
        )


def _is_number(value: Any, kind: type | tuple[type, ...] = (int, float)) -> bool:
    return isinstance(value, kind) and not isinstance(value, bool)


# Why a model rejects an option, for the one-line error.
NOT_APPLIED = {
    "norm": "it has no normalisation layer; its BatchNorm variant, if any, does, e.g. vgg16_bn",
    "spatial_dropout": "it is wired into keras_cnn, lenet5, vgg*, the ResNets and wrn28_10 only",
    "drop_path": "it is wired into the residual blocks of the ResNets, wrn28_10, mobilenet_v2 and xception only",
}


def flatten(x: jax.Array) -> jax.Array:
    return x.reshape((x.shape[0], -1))


def global_avg_pool(x: jax.Array) -> jax.Array:
    return jnp.mean(x, axis=(1, 2))
