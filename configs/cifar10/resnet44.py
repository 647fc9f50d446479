"""ResNet-44 for CIFAR-10 (He et al. 2016 sec. 4.2, n=7), 658,586 parameters, option A shortcuts.

Recipe:   SGD momentum 0.9, lr 0.1, batch 128, weight decay 1e-4, ÷10 at 32k and 48k iterations, 64k in all
          = epochs 82 / 123 / 164 of 390 steps on all 50k training images; 4-pixel zero pad + random 32x32
          crop + horizontal flip; identity shortcuts zero-padded where the width doubles (option A).
Command:  python train.py --config configs/cifar10/resnet44.py --workdir runs/cifar10_resnet44
Cluster:  scripts/launch_slurm.sh configs/cifar10/resnet44.py runs/cifar10_resnet44
Hardware: one GPU (the paper: 2 GPUs).
Expected: paper, Table 6: 7.17% test error -> 92.83% top-1, single view of the test image.
"""

from cnnjax.reference.recipes import he_cifar_resnet_recipe


def get_config():
    return he_cifar_resnet_recipe("resnet44")
