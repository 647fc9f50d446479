"""ResNet-110 for CIFAR-10 (He et al. 2016 sec. 4.2, n=18), 1,727,962 parameters, option A shortcuts.

Recipe:   SGD momentum 0.9, lr 0.1, batch 128, weight decay 1e-4, ÷10 at 32k and 48k iterations, 64k in all
          = epochs 82 / 123 / 164 of 390 steps on all 50k training images; 4-pixel zero pad + random 32x32
          crop + horizontal flip; identity shortcuts zero-padded where the width doubles (option A).
          ResNet-110 warms up (the paper: lr 0.01 until training error < 80%, ~400 iterations, then 0.1):
          here a 1-epoch (390-step) linear warm-up from 0 to 0.1.
Command:  python train.py --config configs/cifar10/resnet110.py --workdir runs/cifar10_resnet110
Cluster:  scripts/launch_slurm.sh configs/cifar10/resnet110.py runs/cifar10_resnet110
Hardware: one GPU (the paper: 2 GPUs).
Expected: paper, Table 6: 6.43% test error (best of 5 runs; mean 6.61 +- 0.16) -> 93.57% top-1,
          single view of the test image.
"""

from cnnjax.reference.recipes import he_cifar_resnet_recipe


def get_config():
    return he_cifar_resnet_recipe("resnet110", warmup_epochs=1.0)
