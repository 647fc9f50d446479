"""ResNet-34 (He et al. 2016; torchvision's v1.5 layout), 21,797,672 parameters, 3.7 GMACs.

Recipe:   torchvision's reference recipe, not the paper's (SGD 0.1 at batch 256, ÷10 when the error plateaus,
          ~120 epochs): SGD momentum 0.9, lr 0.1 per 256 images (linear scaling), batch 256, ÷10 at epochs 30
          and 60, 90 epochs, weight decay 1e-4 on all parameters, random 224 crops + flips.
Command:  python train.py --config configs/imagenet/resnet34.py --workdir runs/resnet34
Cluster:  scripts/launch_slurm.sh configs/imagenet/resnet34.py runs/resnet34
Hardware: 1 GPU or more (torchvision: 8 GPUs x 32 images); other batch sizes keep lr/256 via lr_scaling="linear".
Expected: paper, Table 3, 34-layer option B (projection shortcuts at the downsamplings, as here),
          10-crop: top-1/top-5 error 24.52 / 7.46 -> 75.48% / 92.54%.
          torchvision `resnet34` IMAGENET1K_V1 (this recipe): 73.314% / 91.420%, single 224 centre crop of 256.
"""

from cnnjax.reference.recipes import torchvision_step_recipe


def get_config():
    return torchvision_step_recipe("resnet34")
