"""ResNet-50 at batch 8192: linear learning-rate scaling + gradual warm-up (Goyal et al. 2017).

Recipe:   lr 0.1 per 256 images scaled linearly (0.1 x 8192/256 = 3.2), linear warm-up over the first 5
          epochs, ÷10 at epochs 30, 60 and 80 of 90, SGD momentum 0.9, weight decay 1e-4 not on BatchNorm
          gamma/beta (sec. 5.1), zero-initialised last BN gamma of every residual block, BatchNorm statistics
          per device (bn_sync=False: the paper normalises over each worker's 32 images, so use 256 devices
          to match it). Difference: our warm-up ramps from 0, the paper's from 0.1.
Command:  python train.py --config configs/imagenet/resnet50_large_batch.py --workdir runs/resnet50_8k
Cluster:  scripts/launch_slurm.sh configs/imagenet/resnet50_large_batch.py runs/resnet50_8k
Hardware: the paper: 256 P100 GPUs (32 servers x 8), 32 images each, 1 hour for 90 epochs. Fewer devices
          work (batch 8192 split over them) but per-device BN batches then differ from the paper's 32.
Expected: paper, single 224 centre crop, ILSVRC-2012 val: top-1 error 23.74 +- 0.09 at batch 8k vs
          23.60 +- 0.12 at batch 256 (-> ~76.3%; figures as recalled from the paper, not re-checked here).
          torchvision `resnet50` (batch 256 recipe): 76.130% / 92.862%.
"""

from cnnjax.reference.recipes import torchvision_step_recipe


def get_config():
    return torchvision_step_recipe("resnet50", batch_size=8192, warmup_epochs=5.0, lr_boundaries_epochs=(30, 60, 80),
                                   weight_decay_mask="kernels", bn_sync=False,
                                   model_overrides=dict(zero_init_residual=True))
