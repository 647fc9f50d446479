"""ResNet-18 (He et al. 2016; torchvision's v1.5 layout), 11,689,512 parameters, 1.8 GMACs.

Recipe:   torchvision's reference recipe, not the paper's (SGD 0.1 at batch 256, ÷10 when the error plateaus,
          ~120 epochs): SGD momentum 0.9, lr 0.1 per 256 images (linear scaling), batch 256, ÷10 at epochs 30
          and 60, 90 epochs, weight decay 1e-4 on all parameters, random 224 crops + flips.
Command:  python train.py --config configs/imagenet/resnet18.py --workdir runs/resnet18
Cluster:  scripts/launch_slurm.sh configs/imagenet/resnet18.py runs/resnet18
Hardware: 1 GPU or more (torchvision: 8 GPUs x 32 images); other batch sizes keep lr/256 via lr_scaling="linear".
Expected: paper, Table 2 (10-crop, 224 of 256 and flips): top-1 error 27.88 -> 72.12% (top-5
          not reported; figure unconfirmed in our sources).
          torchvision `resnet18` IMAGENET1K_V1 (this recipe): 69.758% / 89.078%, single 224 centre crop of 256.
"""

from cnnjax.reference.recipes import torchvision_step_recipe


def get_config():
    return torchvision_step_recipe("resnet18")
