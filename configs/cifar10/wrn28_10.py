"""WRN-28-10 with dropout (Zagoruyko & Komodakis 2016) on CIFAR-10, 36,479,194 parameters, 5.2 GMACs.

Recipe:   SGD Nesterov momentum 0.9, lr 0.1, batch 128, weight decay 5e-4 (all parameters, as its Torch
          code), lr x0.2 at epochs 60, 120 and 160 of 200, dropout 0.3 between the 3x3 convs of each block,
          4-pixel pad + random crop + flip, mean/std normalisation, all 50k training images.
Command:  python train.py --config configs/cifar10/wrn28_10.py --workdir runs/cifar10_wrn28_10
Cluster:  scripts/launch_slurm.sh configs/cifar10/wrn28_10.py runs/cifar10_wrn28_10
Hardware: one or two GPUs (the paper: 1-2 Titan X; ~5.2 GMACs per 32x32 image).
Expected: szagoruyko/wide-residual-networks README (= the paper's updated Table): WRN-28-10-dropout 3.89%
          test error (median of 5 runs; 4.00% without dropout) -> 96.11% top-1; the first arXiv version
          (ZCA-whitened data): 4.39% with dropout, 4.17% without.
"""

from cnnjax.reference.recipes import cifar10_recipe


def get_config():
    return cifar10_recipe("wrn28_10", optimizer="nesterov", momentum=0.9, learning_rate=0.1, batch_size=128,
                          weight_decay=5e-4, weight_decay_mask="all", schedule="step",
                          lr_boundaries_epochs=(60, 120, 160), lr_decay_factor=0.2, num_epochs=200,
                          model_overrides=dict(dropout=0.3))
