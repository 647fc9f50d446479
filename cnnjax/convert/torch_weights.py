"""Reading a torchvision state_dict into Flax variables, one named tensor at a time.

Each family's converter describes, layer by layer, which torch prefix fills which Flax module path
(`Mapping` rows). `TorchWeights` consumes tensors by name, so a tensor that is missing, mis-shaped or left
over is an error naming it, instead of a silently half-converted model.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from cnnjax.errors import CnnjaxError

Variables = dict[str, Any]


class ConversionError(CnnjaxError, ValueError):
    """The state_dict does not fit the model (missing, left-over or mis-shaped tensors)."""


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch here
        value = value.detach().cpu().float().numpy() if value.is_floating_point() else value.cpu().numpy()
    return np.asarray(value)


class TorchWeights:
    """A torch state_dict as numpy arrays that are consumed by name."""

    def __init__(self, state_dict: Mapping[str, Any]):
        self._arrays = {k: _to_numpy(v) for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
        self._used: set[str] = set()

    def has(self, key: str) -> bool:
        return key in self._arrays

    def take(self, key: str) -> np.ndarray:
        if key not in self._arrays:
            raise ConversionError(f"state_dict has no tensor {key!r}")
        self._used.add(key)
        return self._arrays[key]

    def conv(self, prefix: str) -> dict[str, np.ndarray]:
        """torch Conv2d (O, I/groups, kh, kw) -> Flax kernel (kh, kw, I/groups, O)."""
        out = {"kernel": self.take(f"{prefix}.weight").transpose(2, 3, 1, 0)}
        if self.has(f"{prefix}.bias"):
            out["bias"] = self.take(f"{prefix}.bias")
        return out

    def linear(self, prefix: str) -> dict[str, np.ndarray]:
        """torch Linear (out, in) -> Flax Dense kernel (in, out)."""
        out = {"kernel": self.take(f"{prefix}.weight").T}
        if self.has(f"{prefix}.bias"):
            out["bias"] = self.take(f"{prefix}.bias")
        return out

    def conv_as_dense(self, prefix: str) -> dict[str, np.ndarray]:
        """A 1x1 torch Conv2d feeding a Flax Dense layer."""
        w = self.take(f"{prefix}.weight")
        out = {"kernel": w.reshape(w.shape[0], -1).T}
        if self.has(f"{prefix}.bias"):
            out["bias"] = self.take(f"{prefix}.bias")
        return out

    def batch_norm(self, prefix: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """torch BatchNorm2d -> (params {scale, bias}, batch_stats {mean, var})."""
        params = {"scale": self.take(f"{prefix}.weight"), "bias": self.take(f"{prefix}.bias")}
        stats = {"mean": self.take(f"{prefix}.running_mean"), "var": self.take(f"{prefix}.running_var")}
        return params, stats

    def unused(self) -> list[str]:
        return sorted(set(self._arrays) - self._used)


@dataclasses.dataclass(frozen=True)
class Layer:
    """One row of a converter: Flax module path ("features/Conv_0") <- torch prefix, by layer kind."""

    flax_path: str
    torch_prefix: str
    kind: str  # "conv", "linear", "conv_as_dense", "bn", "prelu"


def conv(flax_path: str, torch_prefix: str) -> Layer:
    return Layer(flax_path, torch_prefix, "conv")


def linear(flax_path: str, torch_prefix: str) -> Layer:
    return Layer(flax_path, torch_prefix, "linear")


def bn(flax_path: str, torch_prefix: str) -> Layer:
    return Layer(flax_path, torch_prefix, "bn")


def _insert(tree: dict, path: str, leaves: Mapping[str, np.ndarray]) -> None:
    node = tree
    for part in path.split("/"):
        node = node.setdefault(part, {})
    for k, v in leaves.items():
        if k in node:
            raise ConversionError(f"Flax path {path}/{k} is filled twice")
        node[k] = v


def build_variables(weights: TorchWeights, layers: Iterable[Layer]) -> Variables:
    """Fills {'params', 'batch_stats'} from the rows; every tensor of the state_dict must be used."""
    params: dict = {}
    stats: dict = {}
    for layer in layers:
        if layer.kind == "bn":
            p, s = weights.batch_norm(layer.torch_prefix)
            _insert(params, layer.flax_path, p)
            _insert(stats, layer.flax_path, s)
        elif layer.kind == "prelu":
            _insert(params, layer.flax_path, {"alpha": weights.take(f"{layer.torch_prefix}.weight")})
        else:
            reader: Callable[[str], dict] = getattr(weights, layer.kind)
            _insert(params, layer.flax_path, reader(layer.torch_prefix))
    left = weights.unused()
    if left:
        raise ConversionError(f"{len(left)} tensors of the state_dict were not used, e.g. {left[:5]}")
    variables: Variables = {"params": params}
    if stats:
        variables["batch_stats"] = stats
    return variables
