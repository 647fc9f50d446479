"""VGG-16 (configuration D, Simonyan & Zisserman 2015), 138,357,544 parameters, no BatchNorm.

Recipe:   the paper's: SGD momentum 0.9, lr 0.01, batch 256, weight decay 5e-4, dropout 0.5 in fc6/fc7,
          lr ÷10 when validation accuracy stops improving (plateau, patience 5; the paper: 3 times),
          74 epochs (370K iterations), 224 crops of 256-resized images (single scale S=256; FIXED_SCALE_CROP)
          + flips.
          Not reproduced: initialising D from the trained shallower net A (we use he_fan_out init, as
          torchvision does) and the RGB colour shift.
Command:  python train.py --config configs/imagenet/vgg16.py --workdir runs/vgg16
Cluster:  scripts/launch_slurm.sh configs/imagenet/vgg16.py runs/vgg16
Hardware: 4+ GPUs with 16 GB (the paper: 4 Titan Black, 2-3 weeks); 15.5 GMACs per image.
Expected: paper, Table 3, D at S=256, Q=256 (dense evaluation of the full image): top-1/top-5 error
          27.0 / 8.8 -> 73.0% / 91.2%; multi-crop + dense 24.4 / 7.2. torchvision `vgg16`: 71.592% /
          90.382%, single 224 centre crop of 256.
"""

from cnnjax.reference.recipes import FIXED_SCALE_CROP, imagenet_recipe


def get_config():
    return imagenet_recipe("vgg16", optimizer="momentum", momentum=0.9, learning_rate=0.01, batch_size=256,
                           weight_decay=5e-4, schedule="plateau", lr_decay_factor=0.1, plateau_patience=5,
                           num_epochs=74, model_overrides=dict(dropout=0.5), stream=FIXED_SCALE_CROP)
