"""ResNet-56 for CIFAR-10 (He et al. 2016 sec. 4.2, n=9), 853,018 parameters, option A shortcuts.

Recipe:   SGD momentum 0.9, lr 0.1, batch 128, weight decay 1e-4, ÷10 at 32k and 48k iterations, 64k in all
          = epochs 82 / 123 / 164 of 390 steps on all 50k training images; 4-pixel zero pad + random 32x32
          crop + horizontal flip; identity shortcuts zero-padded where the width doubles (option A).
Command:  python train.py --config configs/cifar10/resnet56.py --workdir runs/cifar10_resnet56
Cluster:  scripts/launch_slurm.sh configs/cifar10/resnet56.py runs/cifar10_resnet56
Hardware: one GPU (the paper: 2 GPUs).
Expected: paper, Table 6: 6.97% test error -> 93.03% top-1, single view of the test image.
"""

from cnnjax.reference.recipes import he_cifar_resnet_recipe


def get_config():
    return he_cifar_resnet_recipe("resnet56")
