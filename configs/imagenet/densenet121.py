"""DenseNet-121 (Huang et al. 2017, k=32, BC), 7,978,856 parameters, 2.8 GMACs.

Recipe:   the paper's ImageNet recipe (sec. 4.1), which is torchvision's step recipe with Nesterov: SGD
          Nesterov momentum 0.9, lr 0.1 at batch 256, ÷10 at epochs 30 and 60 of 90, weight decay 1e-4
          (all parameters, as in its fb.resnet.torch code base), random 224 crops + flips.
Command:  python train.py --config configs/imagenet/densenet121.py --workdir runs/densenet121
Cluster:  scripts/launch_slurm.sh configs/imagenet/densenet121.py runs/densenet121
Hardware: 8 GPUs (activation memory is high for its MACs: concatenations).
Expected: paper, Table 3, top-1/top-5 error single-crop 25.02 / 7.71 -> 74.98% / 92.29%, 10-crop
          23.61 / 6.66. torchvision `densenet121` (weights ported from LuaTorch): 74.434% / 91.972%, single
          224 centre crop of 256.
"""

from cnnjax.reference.recipes import torchvision_step_recipe


def get_config():
    return torchvision_step_recipe("densenet121", optimizer="nesterov")
