"""The whole registry at once: the exact parameter count of every registered model (at its registered input
shape and default number of classes), and registration metadata that agrees with the network.

A newly registered model fails `test_table_covers_every_registered_model` until its count is added here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from cnnjax.models import create_model, list_models, model_info
from tests.models.zoo_checks import rngs

# name: (registered num_classes, params). Sources: torchvision num_params, the papers and Keras for the rest,
# see the per-family tests; the CIFAR ResNets are the paper's option-A counts (ResNet Table 6).
COUNTS: dict[str, tuple[int, int]] = {
    # MNIST-sized
    "lenet5": (10, 61_706),  # full C3 connectivity, FC 400-120-84-10
    "mlp": (10, 203_530),  # 784*256 + 256 + 256*10 + 10
    "keras_cnn": (10, 889_834),
    # conv3x3 (no bias) + BN (2 per channel) per layer, flatten after three pools (3x3). bn_cnn: 432+96
    # + 41,472+192 + 165,888+384, fc 1,728*256+256, head 2,570. bn_cnn6: 288+64 + 9,216+64 + 18,432+128
    # + 36,864+128 + 73,728+256 + 147,456+256, head 1,152*10+10
    "bn_cnn": (10, 653_658), "bn_cnn6": (10, 298_410),
    # CIFAR
    "resnet20": (10, 269_722), "resnet32": (10, 464_154), "resnet44": (10, 658_586),
    "resnet56": (10, 853_018), "resnet110": (10, 1_727_962),
    "wrn28_10": (10, 36_479_194),
    "densenet_bc100_k12": (10, 769_162),
    "highway": (10, 2_032_138),
    # ImageNet
    "alexnet": (1000, 60_965_224), "alexnet_owt": (1000, 61_100_840), "zfnet": (1000, 62_357_608),
    "vgg11": (1000, 132_863_336), "vgg13": (1000, 133_047_848),
    "vgg16": (1000, 138_357_544), "vgg19": (1000, 143_667_240),
    "vgg11_bn": (1000, 132_868_840), "vgg13_bn": (1000, 133_053_736),
    "vgg16_bn": (1000, 138_365_992), "vgg19_bn": (1000, 143_678_248),
    "googlenet": (1000, 6_624_904), "inception_v3": (1000, 23_834_568), "xception": (1000, 22_855_952),
    "resnet18": (1000, 11_689_512), "resnet34": (1000, 21_797_672), "resnet50": (1000, 25_557_032),
    "resnet101": (1000, 44_549_160), "resnet152": (1000, 60_192_808),
    "wide_resnet50_2": (1000, 68_883_240), "resnext50_32x4d": (1000, 25_028_904),
    "se_resnet50": (1000, 28_088_024), "preact_resnet18": (1000, 11_687_720),
    "densenet121": (1000, 7_978_856), "densenet169": (1000, 14_149_480), "densenet201": (1000, 20_013_928),
    "squeezenet1_0": (1000, 1_248_424), "squeezenet1_1": (1000, 1_235_496),
    "mobilenet_v1": (1000, 4_231_976), "mobilenet_v2": (1000, 3_504_872),
    "shufflenet_v2_x1_0": (1000, 2_278_604), "efficientnet_b0": (1000, 5_288_548),
}


def test_table_covers_every_registered_model() -> None:
    assert sorted(COUNTS) == list_models()


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_param_count_and_registration(name: str) -> None:
    """Shapes only (eval_shape): the count, and logits of (1, registered num_classes) at the registered input."""
    info = model_info(name)
    num_classes, count = COUNTS[name]
    assert info.num_classes == num_classes
    h, w, c = info.input_shape
    assert c in (1, 3) and 1 <= info.min_input_size <= min(h, w)
    model = create_model(name)
    x = jax.ShapeDtypeStruct((1, h, w, c), jnp.float32)
    logits, variables = jax.eval_shape(lambda x: model.init_with_output(rngs(), x), x)
    assert logits.shape == (1, num_classes)
    assert sum(a.size for a in jax.tree.leaves(variables["params"])) == count
