"""Published parameter counts, MACs and accuracies of the registry's models, shipped as data.

Why here: the report (`cnnjax report`) and its tests must run without the shared reference folder these
figures were collected in (published_figures.md, compiled from torchvision 0.18's weight metadata at
pytorch/vision@6d64cb3, the papers' tables, timm/OSMR/Keras model tables). Each figure names its source.

Conventions (as in torchvision's metadata): params = trainable parameters (BatchNorm gamma/beta counted,
running statistics not); GMACs = multiply-accumulates of convolutions and dense layers only (torchvision's
"GFLOPS" field is this); accuracies in percent. Papers' "FLOPs" of that era are multiply-adds too.
"""

from __future__ import annotations

import dataclasses

TV = "torchvision 0.18 weights metadata (pytorch/vision@6d64cb3)"
TV_CROP = "single 224 centre crop of 256, bilinear"
CALC = "exact count of the published layout (layer by layer; equals OSMR imgclsmob/timm where listed)"


@dataclasses.dataclass(frozen=True)
class Accuracy:
    """A published top-1/top-5 (percent; None where the source gives none) and how it was measured."""

    top1: float | None
    top5: float | None
    protocol: str
    source: str


@dataclasses.dataclass(frozen=True)
class Published:
    """What the literature says about one registry model."""

    model: str
    params: int
    params_source: str
    gmacs: float | None
    gmacs_source: str
    paper: Accuracy | None = None
    torchvision: Accuracy | None = None
    dataset: str = "imagenet2012"
    img_size: int = 224
    crop_pct: float = 0.875  # of the torchvision evaluation (timm convention)
    interpolation: str = "bilinear"


def _err(top1_err: float | None, top5_err: float | None, protocol: str, source: str) -> Accuracy:
    """Papers report errors; the report compares accuracies."""
    acc = lambda err: None if err is None else round(100.0 - err, 3)
    return Accuracy(acc(top1_err), acc(top5_err), protocol, source)


def _tv(model: str, params: int, gmacs: float, top1: float, top5: float, paper: Accuracy | None = None,
        protocol: str = TV_CROP, **fields) -> Published:
    """A model with torchvision weights: its metadata gives params, GMACs and the single-crop accuracy."""
    return Published(model, params, TV, gmacs, TV, paper, Accuracy(top1, top5, protocol, TV), **fields)


def _cifar(model: str, params: int, gmacs: float, error: float, source: str, protocol: str,
           params_source: str = CALC) -> Published:
    return Published(model, params, params_source, gmacs, CALC, _err(error, None, protocol, source),
                     dataset="cifar10", img_size=32, crop_pct=1.0)


TEN_CROP = "10-crop (4 corners + centre of 256, and flips)"
RESNET = "He et al. 2016 (arXiv:1512.03385)"
HE_CIFAR = "He et al. 2016, Table 6"
CIFAR_VIEW = "single view, CIFAR-10 test set, pad-4 crop + flip training"
VGG = "Simonyan & Zisserman 2015, Table 3 (dense evaluation, S=Q=256)"
DENSENET = "Huang et al. 2017, Table 3 (single crop 224)"

PUBLISHED: tuple[Published, ...] = (
    Published("alexnet", 60_965_224, CALC + "; the paper: '60 million'", 0.724, CALC,
              _err(40.7, 18.2, TEN_CROP + ", 1 CNN, ILSVRC-2012 val", "Krizhevsky et al. 2012, Table 2")),
    _tv("alexnet_owt", 61_100_840, 0.714, 56.522, 79.066),
    Published("zfnet", 62_357_608, CALC + " (the paper gives none)", 1.168, CALC,
              _err(38.4, 16.5, TEN_CROP + ", 1 convnet, val", "Zeiler & Fergus 2014, Table 2")),
    _tv("vgg11", 132_863_336, 7.609, 69.020, 88.628, _err(29.6, 10.4, "dense, test scale 256", VGG)),
    _tv("vgg11_bn", 132_868_840, 7.609, 70.370, 89.810),
    _tv("vgg13", 133_047_848, 11.308, 69.928, 89.246, _err(28.7, 9.9, "dense, test scale 256", VGG)),
    _tv("vgg13_bn", 133_053_736, 11.308, 71.586, 90.374),
    _tv("vgg16", 138_357_544, 15.470, 71.592, 90.382, _err(27.0, 8.8, "dense, test scale 256", VGG)),
    _tv("vgg16_bn", 138_365_992, 15.470, 73.360, 91.516),
    _tv("vgg19", 143_667_240, 19.632, 72.376, 90.876, _err(27.3, 9.0, "dense, test scale 256", VGG)),
    _tv("vgg19_bn", 143_678_248, 19.632, 74.218, 91.842),
    _tv("googlenet", 6_624_904, 1.498, 69.778, 89.530,
        _err(None, 10.07, "1 model, 1 crop (top-1 not reported)", "Szegedy et al. 2015, Table 3")),
    _tv("inception_v3", 23_834_568, 5.713, 77.294, 93.450,
        _err(21.2, 5.6, "single 299 crop, 48,238 non-blacklisted val images", "Szegedy et al. 2016, sec. 10"),
        protocol="single 299 centre crop of 342, bilinear (params: without AuxLogits, torchvision 27,161,264 with)",
        img_size=299, crop_pct=299 / 342),
    Published("xception", 22_855_952, "Chollet 2017, Table 3 (= Keras trainable)", 8.357, CALC,
              Accuracy(79.0, 94.5, "single 299 crop", "Chollet 2017, Table 1"),
              img_size=299, crop_pct=0.8975, interpolation="bicubic"),
    _tv("resnet18", 11_689_512, 1.814, 69.758, 89.078,
        _err(27.88, None, TEN_CROP, RESNET + ", Table 2 (unconfirmed transcription)")),
    _tv("resnet34", 21_797_672, 3.664, 73.314, 91.420,
        _err(24.52, 7.46, TEN_CROP + ", option B", RESNET + ", Table 3")),
    _tv("resnet50", 25_557_032, 4.089, 76.130, 92.862, _err(22.85, 6.71, TEN_CROP + ", v1", RESNET + ", Table 3")),
    _tv("resnet101", 44_549_160, 7.801, 77.374, 93.546, _err(21.75, 6.05, TEN_CROP + ", v1", RESNET + ", Table 3")),
    _tv("resnet152", 60_192_808, 11.514, 78.312, 94.046, _err(21.43, 5.71, TEN_CROP + ", v1", RESNET + ", Table 3")),
    _tv("wide_resnet50_2", 68_883_240, 11.398, 78.468, 94.086,
        _err(21.9, 6.03, "single 224 crop", "Zagoruyko & Komodakis, wide-residual-networks pretrained README")),
    _tv("resnext50_32x4d", 25_028_904, 4.230, 77.618, 93.698,
        _err(22.2, None, "single 224 crop", "Xie et al. 2017, facebookresearch/ResNeXt README")),
    Published("se_resnet50", 28_088_024, CALC, 3.87, "Hu et al. 2018, Table 2 (GFLOPs = MACs)",
              _err(23.29, 6.62, "single 224 crop", "Hu et al. 2018, Table 2")),
    _tv("densenet121", 7_978_856, 2.834, 74.434, 91.972, _err(25.02, 7.71, "single 224 crop", DENSENET)),
    _tv("densenet169", 14_149_480, 3.360, 75.600, 92.806, _err(23.80, 6.85, "single 224 crop", DENSENET)),
    _tv("densenet201", 20_013_928, 4.291, 76.896, 93.370, _err(22.58, 6.34, "single 224 crop", DENSENET)),
    _tv("squeezenet1_0", 1_248_424, 0.819, 58.092, 80.420,
        Accuracy(57.5, 80.3, "single crop (as transcribed)", "Iandola et al. 2016, Table 2")),
    _tv("squeezenet1_1", 1_235_496, 0.349, 58.178, 80.624),
    Published("mobilenet_v1", 4_231_976, "Howard et al. 2017, Table 8: 4.2M (exact: " + CALC + ")", 0.569,
              "Howard et al. 2017, Table 8: 569M Mult-Adds",
              Accuracy(70.6, None, "single 224 crop", "Howard et al. 2017, Table 8")),
    _tv("mobilenet_v2", 3_504_872, 0.301, 71.878, 90.286,
        Accuracy(72.0, None, "single 224 crop", "Sandler et al. 2018, Table 4")),
    _tv("shufflenet_v2_x1_0", 2_278_604, 0.145, 69.362, 88.316,
        _err(30.6, 11.1, "single 224 crop", "Ma et al. 2018; megvii-model/ShuffleNet-Series README")),
    _tv("efficientnet_b0", 5_288_548, 0.386, 77.692, 93.532,
        Accuracy(77.1, 93.3, "single 224 crop", "Tan & Le 2019, Table 2 (final arXiv version)"),
        protocol="single 224 centre crop of 256, bicubic", interpolation="bicubic"),
    _cifar("resnet20", 269_722, 0.0406, 8.75, HE_CIFAR, CIFAR_VIEW),
    _cifar("resnet32", 464_154, 0.0689, 7.51, HE_CIFAR, CIFAR_VIEW),
    _cifar("resnet44", 658_586, 0.0972, 7.17, HE_CIFAR, CIFAR_VIEW),
    _cifar("resnet56", 853_018, 0.1255, 6.97, HE_CIFAR, CIFAR_VIEW),
    _cifar("resnet110", 1_727_962, 0.2529, 6.43, HE_CIFAR, CIFAR_VIEW + "; best of 5 (mean 6.61)"),
    _cifar("wrn28_10", 36_479_194, 5.21, 3.89, "Zagoruyko & Komodakis 2016, wide-residual-networks README",
           CIFAR_VIEW + ", dropout 0.3, median of 5 (4.00 without dropout)"),
    _cifar("densenet_bc100_k12", 769_162, 0.288, 4.51, "Huang et al. 2017, Table 2 (C10+)", CIFAR_VIEW),
    Published("highway", 2_300_000, "He et al. 2016, Table 6: 2.3M (rounded, as printed)", None, "",
              _err(7.54, None, CIFAR_VIEW + "; best (mean 7.72)", "Srivastava et al. 2015, via He et al. Table 6"),
              dataset="cifar10", img_size=32, crop_pct=1.0),
    Published("lenet5", 61_706, "modern LeNet-5 layout (full C3, linear output); paper: ~60,000", 0.000417, CALC,
              dataset="fashion_mnist", img_size=28, crop_pct=1.0),
)


def published(model: str) -> Published | None:
    """The published figures of a registry model, or None if the literature has none we ship."""
    return next((p for p in PUBLISHED if p.model == model), None)
