"""The PyTorch CPU reference recipe of `time_to_accuracy.py`: a BN ResNet-style 32-64-128 network on Fashion-MNIST.

Recipe (a typical strong PyTorch CPU baseline): conv3x3-BN-ReLU stem (32), then three stages of one basic
residual block each at 32, 64, 128 channels (stages 2 and 3 downsample with stride 2, 1x1 projection shortcuts),
global average pooling, a linear head; random crop (4-pixel zero padding) + horizontal flip; SGD with Nesterov
momentum 0.9 and weight decay 5e-4; one-cycle learning rate (max 0.1); label smoothing 0.1; batch 256.

It reads the exact splits the cnnjax side trains, validates and tests on (an .npz written by the caller), so the
two sides differ only in framework and recipe. It prints one JSON line per epoch to stdout
(`{"epoch", "val_top1", "elapsed_s"}`, elapsed from this process's start) and a final `{"test_top1"}` line.
JAX is never imported here: the comparison must not pay for the other framework.

Usage (normally started by time_to_accuracy.py):
    python benchmarks/torch_fashion_mnist.py --data splits.npz --epochs 20 [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

START = time.monotonic()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNetStyle(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        self.stages = nn.Sequential(Block(32, 32, 1), Block(32, 64, 2), Block(64, 128, 2))
        self.head = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)).mean(dim=(2, 3)))


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop of the 4-pixel zero-padded image and horizontal flip, per example."""
    n, _, h, w = images.shape
    padded = F.pad(images, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (n,), generator=generator)
    dx = torch.randint(0, 9, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None])[:, None, :, None].expand(n, 1, h, w + 8)
    cropped = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None])[:, None, None, :].expand(n, 1, h, w)
    cropped = cropped.gather(3, cols)
    flip = torch.rand(n, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], cropped.flip(3), cropped)


def to_tensor(images: np.ndarray, mean: float, std: float) -> torch.Tensor:
    """uint8 NHWC (C = 1) -> normalised float NCHW."""
    return (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0 - mean) / std


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 1000) -> float:
    model.eval()
    correct = sum(int((model(images[i:i + batch]).argmax(1) == labels[i:i + batch]).sum())
                  for i in range(0, len(images), batch))
    return correct / len(images)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help=".npz with train/validation/test images (uint8 NHWC) and labels")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--max_lr", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    data = np.load(args.data)
    mean = float(data["train_images"].mean() / 255.0)
    std = float(data["train_images"].std() / 255.0)
    train_x = to_tensor(data["train_images"], mean, std)
    train_y = torch.from_numpy(data["train_labels"].astype(np.int64))
    val_x, val_y = to_tensor(data["validation_images"], mean, std), torch.from_numpy(data["validation_labels"])
    test_x, test_y = to_tensor(data["test_images"], mean, std), torch.from_numpy(data["test_labels"])
    model = ResNetStyle(int(train_y.max()) + 1)
    steps_per_epoch = len(train_x) // args.batch
    optimizer = torch.optim.SGD(model.parameters(), lr=args.max_lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.max_lr, total_steps=args.epochs * steps_per_epoch)
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(train_x), generator=generator)
        for step in range(steps_per_epoch):
            index = order[step * args.batch:(step + 1) * args.batch]
            loss = F.cross_entropy(model(augment(train_x[index], generator)), train_y[index], label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        record = {"epoch": epoch, "val_top1": accuracy(model, val_x, val_y), "elapsed_s": time.monotonic() - START}
        print(json.dumps(record), flush=True)
    print(json.dumps({"test_top1": accuracy(model, test_x, test_y), "elapsed_s": time.monotonic() - START}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
