"""ResNet-152 (He et al. 2016; torchvision's v1.5 layout), 60,192,808 parameters, 11.5 GMACs.

Recipe:   torchvision's reference recipe, not the paper's (SGD 0.1 at batch 256, ÷10 when the error plateaus,
          ~120 epochs): SGD momentum 0.9, lr 0.1 per 256 images (linear scaling), batch 256, ÷10 at epochs 30
          and 60, 90 epochs, weight decay 1e-4 on all parameters, random 224 crops + flips.
Command:  python train.py --config configs/imagenet/resnet152.py --workdir runs/resnet152
Cluster:  scripts/launch_slurm.sh configs/imagenet/resnet152.py runs/resnet152
Hardware: 8 GPUs or more (torchvision: 8 GPUs x 32 images); other batch sizes keep lr/256 via lr_scaling="linear".
Expected: paper, Table 3 (v1), 10-crop: top-1/top-5 error 21.43 / 5.71 -> 78.57% / 94.29%.
          torchvision `resnet152` IMAGENET1K_V1 (this recipe): 78.312% / 94.046%, single 224 centre crop of 256.
"""

from cnnjax.reference.recipes import torchvision_step_recipe


def get_config():
    return torchvision_step_recipe("resnet152")
