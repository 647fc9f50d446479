"""Import of torchvision weights: `from_torchvision(name, state_dict) -> variables`.

`registry` records which models have a converter, the family modules (alexnet, resnet, ...) register
theirs, `torchvision` converts and checks, `files` reads .safetensors/.pth and writes Orbax checkpoints.
"""

from cnnjax.convert.registry import convertible_models, register_converter
from cnnjax.convert.torch_weights import ConversionError, TorchWeights
from cnnjax.convert.torchvision import expected_shapes, from_torchvision

__all__ = ["ConversionError", "TorchWeights", "convertible_models", "expected_shapes", "from_torchvision",
           "register_converter"]
