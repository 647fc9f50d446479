"""ResNet-50 (He et al. 2016; torchvision's v1.5 layout), 25,557,032 parameters, 4.1 GMACs.

Recipe:   torchvision's reference recipe, not the paper's (SGD 0.1 at batch 256, ÷10 when the error plateaus,
          ~120 epochs): SGD momentum 0.9, lr 0.1 per 256 images (linear scaling), batch 256, ÷10 at epochs 30
          and 60, 90 epochs, weight decay 1e-4 on all parameters, random 224 crops + flips.
Command:  python train.py --config configs/imagenet/resnet50.py --workdir runs/resnet50
Cluster:  scripts/launch_slurm.sh configs/imagenet/resnet50.py runs/resnet50
Hardware: 8 GPUs (torchvision: 8 GPUs x 32 images); other batch sizes keep lr/256 via lr_scaling="linear".
Expected: paper, Table 3 (v1: stride in the first 1x1; ours is v1.5 as torchvision), 10-crop:
          top-1/top-5 error 22.85 / 6.71 -> 77.15% / 93.29%; KaimingHe/deep-residual-networks README,
          single 224 crop: 24.7 / 7.8 -> 75.3% / 92.2%.
          torchvision `resnet50` IMAGENET1K_V1 (this recipe): 76.130% / 92.862%, single 224 centre crop of 256.
"""

from cnnjax.reference.recipes import torchvision_step_recipe


def get_config():
    return torchvision_step_recipe("resnet50")
