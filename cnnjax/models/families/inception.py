"""GoogLeNet (Szegedy et al. 2014) and Inception-v3 (Szegedy et al. 2015) in torchvision's layout.

Both networks are chains of "mixed" blocks whose parallel branches are concatenated on the channel axis.
A block is described by a table of branches (sequences of `Conv`/`Pool` steps, or a `Fork` of convs whose
outputs are concatenated), so the tables below read like torchvision's modules, and the Flax names mirror
torchvision's (`inception3a/branch2_1/conv`, `Mixed_6b/branch7x7_2/bn`), which keeps the weight converter
(cnnjax/convert/inception.py) a renaming. Each network's minimum input size is derived from its tables.

torchvision layout, deliberately: BatchNorm (eps 1e-3) after every bias-free conv; GoogLeNet's "5x5"
branch uses a 3x3 conv (pytorch/vision#906) and its max-pools use ceil_mode. Auxiliary classifiers exist
only with `aux_logits=True`; they are built at init (so their parameters exist and count) and run in
training, where their logits are sown into the `aux_logits` collection (GoogLeNet: "aux1", "aux2";
Inception-v3: "aux"; the head modules are "<name>_head"); `__call__` always returns the main logits.
`transform_input=True` re-normalises ImageNet-normalised input to the [-1, 1] scaling of Google's
original weights, as torchvision does when it loads pretrained weights.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnnjax.models.layers import Classifier, Ops, flatten, global_avg_pool
from cnnjax.models.window_pool import avg_pool, max_pool
from cnnjax.models.pooling import Window, adaptive_avg_pool, check_input_size, smallest_input
from cnnjax.models.registry import IMAGENET_MEAN, IMAGENET_STD, register_model


def to_google_scaling(x: jax.Array) -> jax.Array:
    """torchvision's `transform_input`: ImageNet mean/std normalisation -> (x - 0.5) / 0.5 scaling."""
    std = jnp.asarray(IMAGENET_STD, x.dtype)
    mean = jnp.asarray(IMAGENET_MEAN, x.dtype)
    return x * (std / 0.5) + (mean - 0.5) / 0.5


# ---------------------------------------------------------------------------------------------------------
# Block description tables


class Conv(NamedTuple):
    """torchvision's BasicConv2d: conv (no bias) -> BN -> act. `padding` is PyTorch's symmetric padding."""

    name: str
    features: int
    kernel: int | tuple[int, int] = 1
    stride: int = 1
    padding: int | tuple[int, int] = 0


class Pool(NamedTuple):
    kind: str  # "max" or "avg" (avg counts padding, like F.avg_pool2d)
    window: int
    stride: int
    padding: int = 0
    ceil_mode: bool = False


class Fork(NamedTuple):
    """Convs applied to the same input, outputs concatenated (Inception-v3's E blocks)."""

    convs: tuple[Conv, ...]


Step = Union[Conv, Pool, Fork]
Branch = tuple[Step, ...]


class Block(NamedTuple):
    """A mixed block of a network's body: its branches, concatenated in this order."""

    name: str
    branches: tuple[Branch, ...]


# A network body is a sequence of Blocks, Pools, and aux-head taps: the name (a str) the head's logits are
# sown under; the head module itself is `<tap>_head` (Flax reserves a name for a module or a variable).
BodyItem = Union[Block, Pool, str]


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


class BasicConv(nn.Module):
    ops: Ops
    spec: Conv

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        ph, pw = _pair(self.spec.padding)
        x = self.ops.conv(self.spec.features, _pair(self.spec.kernel), strides=self.spec.stride,
                          padding=((ph, ph), (pw, pw)), name="conv")(x)
        return self.ops.act()(self.ops.norm(name="bn")(x))


def pool(x: jax.Array, spec: Pool) -> jax.Array:
    if spec.ceil_mode:
        if spec.kind != "max" or spec.padding:
            raise ValueError("ceil_mode is only used for unpadded max-pooling here")
        return max_pool(x, spec.window, spec.stride, ceil_mode=True)
    padding = ((spec.padding,) * 2,) * 2 if spec.padding else "VALID"
    fn = max_pool if spec.kind == "max" else avg_pool
    return fn(x, spec.window, spec.stride, padding)


def run_steps(ops: Ops, x: jax.Array, steps: Branch) -> jax.Array:
    """Applies a branch; called inside a compact method, so the convs become children of that module."""
    for step in steps:
        if isinstance(step, Conv):
            x = BasicConv(ops, step, name=step.name)(x)
        elif isinstance(step, Pool):
            x = pool(x, step)
        else:
            x = jnp.concatenate([BasicConv(ops, c, name=c.name)(x) for c in step.convs], axis=-1)
    return x


class Mixed(nn.Module):
    """An Inception block: its branches applied to the same input, concatenated in table order."""

    ops: Ops
    branches: tuple[Branch, ...]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.concatenate([run_steps(self.ops, x, b) for b in self.branches], axis=-1)



def windows(steps: Branch) -> Iterator[Window]:
    """A branch's windows along the height axis, for PyTorch's output-size arithmetic."""
    for step in steps:
        if isinstance(step, Conv):
            yield Window(_pair(step.kernel)[0], step.stride, _pair(step.padding)[0])
        elif isinstance(step, Pool):
            yield Window(step.window, step.stride, step.padding, step.ceil_mode)
        else:
            yield from windows(step.convs[:1])


def min_input_size(stem: Branch, body: tuple[BodyItem, ...], tail: Branch = ()) -> int:
    """Smallest input for which stem, body and then `tail` keep at least one pixel (the branches of a
    block agree in size, so the first one stands for the block)."""
    chain = list(windows(stem))
    for item in body:
        if isinstance(item, Pool):
            chain += windows((item,))
        elif isinstance(item, Block):
            chain += windows(item.branches[0])
    return smallest_input([*chain, *windows(tail)])


def body_until(body: tuple[BodyItem, ...], tap: str) -> tuple[BodyItem, ...]:
    return body[: body.index(tap)]


class InceptionClassifier(Classifier):
    """stem -> body of mixed blocks (with aux-head taps) -> global average -> dropout -> fc.

    Subclasses set the class constants NAME, STEM, BODY, MIN_SIZE, AUX_MIN_SIZE and build `aux_head`.
    """

    bn_epsilon: float = 1e-3  # torchvision's BasicConv2d
    aux_logits: bool = False
    transform_input: bool = False
    dropout: float = 0.5

    def aux_head(self, ops: Ops, name: str) -> nn.Module:
        raise NotImplementedError

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        check_input_size(x, self.MIN_SIZE, self.NAME)
        run_aux = self.aux_logits and (train or self.is_initializing())  # at init, so the params exist
        if run_aux:
            check_input_size(x, self.AUX_MIN_SIZE, f"{self.NAME} with aux_logits=True")
        ops = self.ops(train)
        x = run_steps(ops, to_google_scaling(x) if self.transform_input else x, self.STEM)
        for item in self.BODY:
            if isinstance(item, Pool):
                x = pool(x, item)
            elif isinstance(item, Block):
                x = Mixed(ops, item.branches, name=item.name)(x)
            elif run_aux:
                logits = self.aux_head(ops, f"{item}_head")(x)
                if train and not self.is_initializing():
                    self.sow("aux_logits", item, logits)
        x = ops.dropout(self.dropout)(global_avg_pool(x))
        return ops.dense(self.num_classes, name="fc")(x)


# ---------------------------------------------------------------------------------------------------------
# GoogLeNet

MAX3_CEIL = Pool("max", 3, 2, ceil_mode=True)
GOOGLENET_STEM: Branch = (Conv("conv1", 64, 7, 2, 3), MAX3_CEIL, Conv("conv2", 64), Conv("conv3", 192, 3, 1, 1),
                          MAX3_CEIL)


def googlenet_block(name: str, c1: int, c3r: int, c3: int, c5r: int, c5: int, proj: int) -> Block:
    """torchvision's Inception: 1x1 | 1x1-3x3 | 1x1-"5x5" (3x3, as torchvision) | max-pool-1x1 projection."""
    return Block(name, (
        (Conv("branch1", c1),),
        (Conv("branch2_0", c3r), Conv("branch2_1", c3, 3, 1, 1)),
        (Conv("branch3_0", c5r), Conv("branch3_1", c5, 3, 1, 1)),
        (Pool("max", 3, 1, 1), Conv("branch4_1", proj)),
    ))


GOOGLENET_BODY: tuple[BodyItem, ...] = (
    googlenet_block("inception3a", 64, 96, 128, 16, 32, 32),
    googlenet_block("inception3b", 128, 128, 192, 32, 96, 64),
    MAX3_CEIL,
    googlenet_block("inception4a", 192, 96, 208, 16, 48, 64),
    "aux1",
    googlenet_block("inception4b", 160, 112, 224, 24, 64, 64),
    googlenet_block("inception4c", 128, 128, 256, 24, 64, 64),
    googlenet_block("inception4d", 112, 144, 288, 32, 64, 64),
    "aux2",
    googlenet_block("inception4e", 256, 160, 320, 32, 128, 128),
    Pool("max", 2, 2, ceil_mode=True),
    googlenet_block("inception5a", 256, 160, 320, 32, 128, 128),
    googlenet_block("inception5b", 384, 192, 384, 48, 128, 128),
)


class GoogLeNetAux(nn.Module):
    """adaptive avg-pool to 4x4 -> 1x1 conv 128 -> fc 1024 -> act -> dropout -> fc classes."""

    ops: Ops
    num_classes: int
    dropout: float

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = BasicConv(self.ops, Conv("conv", 128), name="conv")(adaptive_avg_pool(x, 4))
        x = self.ops.act()(self.ops.dense(1024, name="fc1")(flatten(x)))  # NHWC order; the converter permutes
        x = self.ops.dropout(self.dropout)(x)
        return self.ops.dense(self.num_classes, name="fc2")(x)


class GoogLeNet(InceptionClassifier):
    NAME = "googlenet"
    STEM = GOOGLENET_STEM
    BODY = GOOGLENET_BODY
    MIN_SIZE = AUX_MIN_SIZE = min_input_size(GOOGLENET_STEM, GOOGLENET_BODY)  # 15 (adaptive aux pooling)

    dropout: float = 0.2
    aux_dropout: float = 0.7

    def aux_head(self, ops: Ops, name: str) -> nn.Module:
        return GoogLeNetAux(ops, self.num_classes, self.aux_dropout, name=name)


register_model("googlenet", GoogLeNet, family="googlenet", input_shape=(224, 224, 3),
               min_input_size=GoogLeNet.MIN_SIZE, torchvision="googlenet",
               reference="Szegedy et al. 2014 (torchvision layout)")


# ---------------------------------------------------------------------------------------------------------
# Inception-v3

AVG3 = Pool("avg", 3, 1, 1)
MAX3 = Pool("max", 3, 2)
INCEPTION_V3_STEM: Branch = (
    Conv("Conv2d_1a_3x3", 32, 3, 2), Conv("Conv2d_2a_3x3", 32, 3), Conv("Conv2d_2b_3x3", 64, 3, 1, 1), MAX3,
    Conv("Conv2d_3b_1x1", 80), Conv("Conv2d_4a_3x3", 192, 3), MAX3)


def _c(name: str, features: int, kernel: int | tuple[int, int] = 1, stride: int = 1) -> Conv:
    """A conv with torchvision's 'same' padding for odd kernels at stride 1 (none at stride 2)."""
    kh, kw = _pair(kernel)
    return Conv(name, features, kernel, stride, (0, 0) if stride > 1 else (kh // 2, kw // 2))


def inception_a(name: str, pool_features: int) -> Block:
    return Block(name, (
        (_c("branch1x1", 64),),
        (_c("branch5x5_1", 48), _c("branch5x5_2", 64, 5)),
        (_c("branch3x3dbl_1", 64), _c("branch3x3dbl_2", 96, 3), _c("branch3x3dbl_3", 96, 3)),
        (AVG3, _c("branch_pool", pool_features)),
    ))


def inception_b(name: str) -> Block:
    return Block(name, (
        (_c("branch3x3", 384, 3, 2),),
        (_c("branch3x3dbl_1", 64), _c("branch3x3dbl_2", 96, 3), _c("branch3x3dbl_3", 96, 3, 2)),
        (MAX3,),
    ))


def inception_c(name: str, c7: int) -> Block:
    return Block(name, (
        (_c("branch1x1", 192),),
        (_c("branch7x7_1", c7), _c("branch7x7_2", c7, (1, 7)), _c("branch7x7_3", 192, (7, 1))),
        (_c("branch7x7dbl_1", c7), _c("branch7x7dbl_2", c7, (7, 1)), _c("branch7x7dbl_3", c7, (1, 7)),
         _c("branch7x7dbl_4", c7, (7, 1)), _c("branch7x7dbl_5", 192, (1, 7))),
        (AVG3, _c("branch_pool", 192)),
    ))


def inception_d(name: str) -> Block:
    return Block(name, (
        (_c("branch3x3_1", 192), _c("branch3x3_2", 320, 3, 2)),
        (_c("branch7x7x3_1", 192), _c("branch7x7x3_2", 192, (1, 7)), _c("branch7x7x3_3", 192, (7, 1)),
         _c("branch7x7x3_4", 192, 3, 2)),
        (MAX3,),
    ))


def inception_e(name: str) -> Block:
    return Block(name, (
        (_c("branch1x1", 320),),
        (_c("branch3x3_1", 384), Fork((_c("branch3x3_2a", 384, (1, 3)), _c("branch3x3_2b", 384, (3, 1))))),
        (_c("branch3x3dbl_1", 448), _c("branch3x3dbl_2", 384, 3),
         Fork((_c("branch3x3dbl_3a", 384, (1, 3)), _c("branch3x3dbl_3b", 384, (3, 1))))),
        (AVG3, _c("branch_pool", 192)),
    ))


INCEPTION_V3_BODY: tuple[BodyItem, ...] = (
    inception_a("Mixed_5b", 32), inception_a("Mixed_5c", 64), inception_a("Mixed_5d", 64),
    inception_b("Mixed_6a"),
    inception_c("Mixed_6b", 128), inception_c("Mixed_6c", 160), inception_c("Mixed_6d", 160),
    inception_c("Mixed_6e", 192),
    "aux",
    inception_d("Mixed_7a"), inception_e("Mixed_7b"), inception_e("Mixed_7c"),
)
INCEPTION_V3_AUX: Branch = (Pool("avg", 5, 3), Conv("conv0", 128), Conv("conv1", 768, 5))


class InceptionV3Aux(nn.Module):
    """avg-pool 5/3 -> 1x1 conv 128 -> 5x5 conv 768 -> global average -> fc classes."""

    ops: Ops
    num_classes: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = run_steps(self.ops, x, INCEPTION_V3_AUX)
        return self.ops.dense(self.num_classes, name="fc")(global_avg_pool(x))


class InceptionV3(InceptionClassifier):
    NAME = "inception_v3"
    STEM = INCEPTION_V3_STEM
    BODY = INCEPTION_V3_BODY
    MIN_SIZE = min_input_size(INCEPTION_V3_STEM, INCEPTION_V3_BODY)  # 75, as torchvision's weights meta
    # 299: the aux head's 5x5 conv needs Mixed_6e's 17x17 map
    AUX_MIN_SIZE = min_input_size(INCEPTION_V3_STEM, body_until(INCEPTION_V3_BODY, "aux"), INCEPTION_V3_AUX)

    def aux_head(self, ops: Ops, name: str) -> nn.Module:
        return InceptionV3Aux(ops, self.num_classes, name=name)


register_model("inception_v3", InceptionV3, family="inception_v3", input_shape=(299, 299, 3),
               min_input_size=InceptionV3.MIN_SIZE, crop_pct=299 / 342, torchvision="inception_v3",
               reference="Szegedy et al. 2015, Rethinking the Inception Architecture (torchvision layout)")
