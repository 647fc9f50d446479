"""EfficientNet-B0 (Tan & Le 2019), 5,288,548 parameters, 0.39 GMACs, SiLU, squeeze-excitation.

Recipe:   the paper's as far as cnnjax's optimizers allow: RMSProp (decay 0.9), lr 0.256 at batch 4096
          (0.016 per 256, linear scaling) with 5 warm-up epochs (the TPU code's), decayed 0.97 every 2.4
          epochs (exponential 0.97^(1/2.4) per epoch), 350 epochs, weight decay 1e-5, label smoothing 0.1,
          BN momentum 0.99, dropout 0.2, stochastic depth 0.2. Differences: no momentum 0.9 inside RMSProp
          and optax's epsilon 1e-8 instead of TensorFlow's 1e-3 (lower learning_rate if the loss diverges),
          no AutoAugment (no such op in cnnjax.data.augment), no weight averaging (EMA).
Command:  python train.py --config configs/imagenet/efficientnet_b0.py --workdir runs/efficientnet_b0
Cluster:  scripts/launch_slurm.sh configs/imagenet/efficientnet_b0.py runs/efficientnet_b0
Hardware: the paper: a TPU v3 pod slice (batch 4096); 32+ accelerators; try --config.dtype=bfloat16.
Expected: paper (final arXiv version), Table 2: 77.1% / 93.3% (single 224 crop; first version 76.3 / 93.2).
          torchvision `efficientnet_b0` (weights ported from timm): 77.692% / 93.532%, single 224 centre
          crop of 256, bicubic resize.
"""

from cnnjax.reference.recipes import imagenet_recipe


def get_config():
    return imagenet_recipe("efficientnet_b0", optimizer="rmsprop", rmsprop_decay=0.9, learning_rate=0.016,
                           lr_scaling="linear", batch_size=4096, warmup_epochs=5.0, schedule="exponential",
                           lr_decay_factor=0.97 ** (1 / 2.4), num_epochs=350, weight_decay=1e-5,
                           label_smoothing=0.1,
                           model_overrides=dict(bn_momentum=0.99, dropout_rate=0.2, stochastic_depth_rate=0.2))
