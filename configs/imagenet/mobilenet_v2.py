"""MobileNetV2 1.0-224 (Sandler et al. 2018), 3,504,872 parameters, 0.30 GMACs.

Recipe:   torchvision's (references/classification README): SGD momentum 0.9, lr 0.045 at batch 256,
          decayed by 0.98 every epoch, 300 epochs, weight decay 4e-5 on all parameters, dropout 0.2. The
          paper used RMSProp (decay 0.9, momentum 0.9) with the same lr, decay and weight decay; cnnjax's
          rmsprop has no momentum term, so the SGD variant that produced torchvision's weights is used.
Command:  python train.py --config configs/imagenet/mobilenet_v2.py --workdir runs/mobilenet_v2
Cluster:  scripts/launch_slurm.sh configs/imagenet/mobilenet_v2.py runs/mobilenet_v2
Hardware: 8 GPUs x 32 images (the paper: 16 GPUs, asynchronous, batch 96 each).
Expected: paper, Table 4: 72.0% top-1 (single crop 224; top-5 not reported). torchvision
          `mobilenet_v2` IMAGENET1K_V1 (this recipe): 71.878% / 90.286%, single 224 centre crop of 256.
"""

from cnnjax.reference.recipes import imagenet_recipe


def get_config():
    return imagenet_recipe("mobilenet_v2", optimizer="momentum", momentum=0.9, learning_rate=0.045,
                           batch_size=256, schedule="exponential", lr_decay_factor=0.98, num_epochs=300,
                           weight_decay=4e-5, weight_decay_mask="all", model_overrides=dict(dropout_rate=0.2))
