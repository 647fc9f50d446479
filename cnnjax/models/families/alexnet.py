"""AlexNet (Krizhevsky et al. 2012), its one-tower torchvision form, and ZFNet (Zeiler & Fergus 2014).

All three are five convolutions followed by the same classifier: (dropout) fc6 4096 -> (dropout) fc7 4096
-> fc8. They differ only in their convolution table (`ARCHS`):

* `alexnet`, the paper's two-GPU net: 96-256-384-384-256 filters, conv2/4/5 see only their own GPU's half
  of the channels (`feature_group_count=2`), LRN after the ReLUs of conv1/conv2, overlapping 3x3/2 max-pools
  after them and after conv5, dropout after fc6/fc7 (Caffe's order): 60,965,224 parameters.
  Input 224x224 with conv1 padding 2: (224 + 4 - 11) / 4 + 1 = 55 is the 55x55 of the paper's figure
  (whose "224" does not give 55 unpadded; Caffe uses 227 without padding, the same geometry).
* `alexnet_owt`, torchvision's `alexnet` ("One weird trick", arXiv:1404.5997): 64-192-384-256-256, no groups,
  no LRN, dropout before fc6/fc7: 61,100,840.
* `zfnet`, Fig. 3 of Zeiler & Fergus: conv1 96@7x7/2, conv2 256@5x5/2, 384-384-256; 3x3/2 max-pools with
  PyTorch's ceil_mode and conv1 padding 1 so a 224 input gives the figure's 110-55-26-13-13-6 maps; the
  "contrast normalization" after pool1/pool2 is AlexNet's LRN: 62,357,608.

All end in a 6x6 adaptive average pool (the identity at 224), so smaller inputs down to `min_input_size`
(63 for both AlexNets, 47 for ZFNet) run with the same classifier. Flattening is NHWC; the converter
permutes fc6's rows from torch's NCHW order.
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax

from cnnjax.models.blocks import fc_head
from cnnjax.models.layers import Classifier
from cnnjax.models.window_pool import max_pool
from cnnjax.models.lrn import ALEXNET_LRN, local_response_norm
from cnnjax.models.pooling import Window, adaptive_avg_pool, check_input_size, smallest_input
from cnnjax.models.registry import register_model

POOL = 3, 2  # overlapping max-pooling: 3x3 windows, stride 2


@dataclasses.dataclass(frozen=True)
class ConvSpec:
    """One convolution (with bias, then the activation) and what follows it, in order: "lrn", "pool"."""

    features: int
    kernel: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    then: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class AlexNetSpec:
    convs: tuple[ConvSpec, ...]
    ceil_mode: bool = False  # max-pool output size rounding (PyTorch's ceil_mode)
    dropout_first: bool = False  # torchvision: dropout before fc6/fc7; the paper/Caffe: after their ReLUs
    pooled: int = 6  # spatial size fed to fc6

    def windows(self) -> list[Window]:
        """The downsampling chain along one axis, for the smallest-input computation."""
        out = []
        for c in self.convs:
            out.append(Window(c.kernel, c.stride, c.padding))
            if "pool" in c.then:
                out.append(Window(*POOL, 0, self.ceil_mode))
        return out


ARCHS: dict[str, AlexNetSpec] = {
    "alexnet": AlexNetSpec((
        ConvSpec(96, 11, 4, 2, then=("lrn", "pool")),
        ConvSpec(256, 5, 1, 2, groups=2, then=("lrn", "pool")),
        ConvSpec(384, 3, 1, 1),
        ConvSpec(384, 3, 1, 1, groups=2),
        ConvSpec(256, 3, 1, 1, groups=2, then=("pool",)),
    )),
    "alexnet_owt": AlexNetSpec((
        ConvSpec(64, 11, 4, 2, then=("pool",)),
        ConvSpec(192, 5, 1, 2, then=("pool",)),
        ConvSpec(384, 3, 1, 1),
        ConvSpec(256, 3, 1, 1),
        ConvSpec(256, 3, 1, 1, then=("pool",)),
    ), dropout_first=True),
    "zfnet": AlexNetSpec((
        ConvSpec(96, 7, 2, 1, then=("pool", "lrn")),
        ConvSpec(256, 5, 2, 0, then=("pool", "lrn")),
        ConvSpec(384, 3, 1, 1),
        ConvSpec(384, 3, 1, 1),
        ConvSpec(256, 3, 1, 1, then=("pool",)),
    ), ceil_mode=True),
}


class AlexNet(Classifier):
    """Five convolutions + the fc6/fc7/fc8 classifier; `arch` selects the table of `ARCHS`."""

    arch: str = "alexnet"
    lrn: bool = True  # False ablates the LRN layers of the architecture (if it has any)
    dropout: float = 0.5

    def applied_options(self) -> frozenset[str]:
        return frozenset()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if self.arch not in ARCHS:
            raise ValueError(f"unknown AlexNet arch {self.arch!r}; choose one of {', '.join(ARCHS)}")
        spec = ARCHS[self.arch]
        check_input_size(x, smallest_input(spec.windows()), self.arch)
        ops = self.ops(train)
        for i, c in enumerate(spec.convs, start=1):
            x = ops.conv(c.features, (c.kernel, c.kernel), strides=c.stride, padding=c.padding,
                         feature_group_count=c.groups, use_bias=True, name=f"conv{i}")(x)
            x = ops.act()(x)
            for op in c.then:
                if op == "pool":
                    x = max_pool(x, POOL[0], POOL[1], ceil_mode=spec.ceil_mode)
                elif self.lrn:
                    x = local_response_norm(x, **ALEXNET_LRN)
        x = adaptive_avg_pool(x, spec.pooled)
        return fc_head(ops, x, self.num_classes, self.dropout, spec.dropout_first)


_REFERENCES = {
    "alexnet": ("Krizhevsky et al. 2012 (two-tower, grouped, LRN)", None),
    "alexnet_owt": ("Krizhevsky 2014, arXiv:1404.5997 (torchvision alexnet)", "alexnet"),
    "zfnet": ("Zeiler & Fergus 2014, Fig. 3", None),
}


for _arch, (_reference, _twin) in _REFERENCES.items():
    register_model(_arch, functools.partial(AlexNet, arch=_arch), family="alexnet", input_shape=(224, 224, 3),
                   min_input_size=smallest_input(ARCHS[_arch].windows()), torchvision=_twin,
                   reference=_reference)
