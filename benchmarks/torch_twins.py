"""The PyTorch twins of the cnnjax models that `train_throughput.py` times, and their timed training/eval steps.

Why a module of its own: the twins are only worth comparing if they are the cnnjax models (the benchmark refuses
a parameter-count mismatch), and keeping them as one data table + one builder makes that easy to check by eye.
It imports torch at the top, so `train_throughput.py` imports it only when torch is installed.

A twin is a table of layer rows. Sequential models are one table; a residual model (resnet20) uses `residual`
rows, each a `ResidualA` module whose branch is built from rows by the same builder.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from cnnjax.data.sources import Split
from cnnjax.data.splits import channel_stats
from cnnjax.models import model_info

NUM_CLASSES = 10
Row = tuple[Any, ...]


def conv(out: int, kernel: int, padding: int, stride: int = 1, bias: bool = True) -> Row:
    """A conv row; "same" 3x3 = padding 1. cnnjax's convolutions followed by BatchNorm have no bias."""
    return ("conv", out, kernel, padding, stride, bias)


def conv_bn(out: int, stride: int = 1) -> tuple[Row, Row]:
    return conv(out, 3, 1, stride, bias=False), ("bn",)


def basic_block(out: int, stride: int) -> Row:
    """ResidualBlock (basic, option A): conv-BN-ReLU-conv-BN branch; ReLU after adding the shortcut."""
    return ("residual", out, stride, (*conv_bn(out, stride), ("relu",), *conv_bn(out)))


def _resnet_cifar(blocks_per_stage: int, widths: tuple[int, ...] = (16, 32, 64)) -> tuple[Row, ...]:
    """He et al.'s CIFAR ResNet (cnnjax.models.families.resnet_cifar), shortcut option A."""
    blocks = [basic_block(width, 2 if stage and not i else 1)
              for stage, width in enumerate(widths) for i in range(blocks_per_stage)]
    return (*conv_bn(widths[0]), ("relu",), *blocks, ("avgpool_global",), ("linear", NUM_CLASSES))


TORCH_LAYERS: dict[str, tuple[Row, ...]] = {
    "lenet5": (  # pad 2 + VALID conv == conv with padding 2
        conv(6, 5, 2), ("tanh",), ("avgpool", 2),
        conv(16, 5, 0), ("tanh",), ("avgpool", 2),
        ("flatten",), ("linear", 120), ("tanh",), ("linear", 84), ("tanh",), ("linear", NUM_CLASSES),
    ),
    "keras_cnn": (
        conv(32, 3, 1), ("relu",), conv(32, 3, 0), ("relu",), ("maxpool", 2), ("dropout", 0.25),
        conv(64, 3, 1), ("relu",), conv(64, 3, 0), ("relu",), ("maxpool", 2), ("dropout", 0.25),
        ("flatten",), ("linear", 512), ("relu",), ("dropout", 0.5), ("linear", NUM_CLASSES),
    ),
    "resnet20": _resnet_cifar(3),
    "bn_cnn": (  # the Fashion-MNIST fast recipe's network (cnnjax.models.families.bn_cnn)
        *conv_bn(48), ("relu",), ("maxpool", 2), *conv_bn(96), ("relu",), ("maxpool", 2),
        *conv_bn(192), ("relu",), ("maxpool", 2), ("flatten",), ("linear", 256), ("relu",), ("linear", NUM_CLASSES),
    ),
}


class ResidualA(nn.Module):
    """relu(branch(x) + shortcut(x)); the shortcut subsamples by `stride` and zero-pads channels (option A),
    like `cnnjax.models.blocks.shortcut_a`: no parameters."""

    def __init__(self, branch: nn.Module, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.branch, self.stride, self.extra = branch, stride, out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
        if self.extra > 0:
            shortcut = nn.functional.pad(shortcut, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))
        return torch.relu(self.branch(x) + shortcut)


def build(rows: tuple[Row, ...], channels: int, size: int) -> tuple[nn.Sequential, int, int]:
    """The layers of `rows` on (channels, size, size) inputs; returns them and the output channels and size."""
    layers: list[nn.Module] = []
    for kind, *args in rows:
        if kind == "conv":
            out, kernel, padding, stride, bias = args
            layers.append(nn.Conv2d(channels, out, kernel, stride, padding, bias=bias))
            channels, size = out, (size + 2 * padding - kernel) // stride + 1
        elif kind == "bn":
            layers.append(nn.BatchNorm2d(channels))
        elif kind == "residual":
            out, stride, branch_rows = args
            branch, _, size = build(branch_rows, channels, size)
            layers.append(ResidualA(branch, channels, out, stride))
            channels = out
        elif kind in ("avgpool", "maxpool"):
            layers.append((nn.AvgPool2d if kind == "avgpool" else nn.MaxPool2d)(args[0]))
            size //= args[0]
        elif kind == "avgpool_global":
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            size = 1
        elif kind == "flatten":
            layers.append(nn.Flatten())
            channels, size = channels * size * size, 1
        elif kind == "linear":
            layers.append(nn.Linear(channels, args[0]))
            channels = args[0]
        elif kind == "dropout":
            layers.append(nn.Dropout(args[0]))
        else:
            layers.append({"tanh": nn.Tanh, "relu": nn.ReLU}[kind]())
    return nn.Sequential(*layers), channels, size


def torch_model(name: str) -> nn.Module:
    """The PyTorch twin of cnnjax model `name` on its registry input shape (NCHW)."""
    if name not in TORCH_LAYERS:
        raise ValueError(f"no PyTorch twin for {name!r}; available: {', '.join(TORCH_LAYERS)}")
    height, _, channels = model_info(name).input_shape
    return build(TORCH_LAYERS[name], channels, height)[0]


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class _TorchData:
    """The synthetic split as NCHW uint8 tensors, normalised per batch (as cnnjax does on device)."""

    def __init__(self, data: Split, batch_size: int) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(data.images.transpose(0, 3, 1, 2)))
        self.labels = torch.from_numpy(data.labels.astype(np.int64))
        mean, std = channel_stats(data)
        self.mean, self.std = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)
        self.batch_size, self.steps_per_epoch = batch_size, len(data) // batch_size

    def batch(self, index: torch.Tensor | slice) -> torch.Tensor:
        return (self.images[index].float() / 255.0 - self.mean) / self.std


class TorchTrainStep(_TorchData):
    """A full PyTorch training step: shuffled batch gather, normalisation, forward, backward, Adam."""

    def __init__(self, name: str, batch_size: int, data: Split, learning_rate: float, seed: int = 0) -> None:
        super().__init__(data, batch_size)
        torch.manual_seed(seed)
        self.model = torch_model(name).train()
        self.params = param_count(self.model)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=learning_rate)
        self.loss = nn.CrossEntropyLoss()
        self.step, self.order = 0, torch.randperm(len(data))

    def __call__(self, steps: int) -> None:
        for _ in range(steps):
            offset = self.step % self.steps_per_epoch
            if offset == 0 and self.step:
                self.order = torch.randperm(len(self.labels))
            index = self.order[offset * self.batch_size:(offset + 1) * self.batch_size]
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss(self.model(self.batch(index)), self.labels[index])
            loss.backward()
            self.optimizer.step()
            self.step += 1


class TorchEvalStep(_TorchData):
    """Inference on consecutive batches: `model.eval()` (BatchNorm running statistics, dropout off) under
    `torch.inference_mode()`, like an evaluation loop."""

    def __init__(self, model: nn.Module, batch_size: int, data: Split) -> None:
        super().__init__(data, batch_size)
        self.model, self.params, self.step = model.eval(), param_count(model), 0

    def __call__(self, steps: int) -> None:
        with torch.inference_mode():
            for _ in range(steps):
                offset = (self.step % self.steps_per_epoch) * self.batch_size
                self.model(self.batch(slice(offset, offset + self.batch_size)))
                self.step += 1
