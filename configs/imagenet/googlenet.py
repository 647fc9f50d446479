"""GoogLeNet (Szegedy et al. 2015) in torchvision's layout (BatchNorm, 3x3 "5x5" branch), with both
auxiliary classifiers trained: 6,624,904 parameters at inference, 13,004,888 with the aux heads.

Recipe:   auxiliary losses weighted 0.3 (aux dropout 0.7, main 0.2), SGD momentum 0.9, weight decay 2e-4,
          lr decayed 4% per epoch (exponential 0.96), 90 epochs, batch 256, lr 0.08 per 256 (linear
          scaling; = BVLC Caffe GoogLeNet's 0.01 at batch 32). The paper states only momentum 0.9 and
          "decreasing the learning rate by 4% every 8 epochs" of asynchronous SGD with Polyak averaging,
          neither its initial rate nor its length; we decay every epoch so the rate ends at 0.025x in 90.
Command:  python train.py --config configs/imagenet/googlenet.py --workdir runs/googlenet
Cluster:  scripts/launch_slurm.sh configs/imagenet/googlenet.py runs/googlenet
Hardware: 1-8 GPUs (1.5 GMACs per image; the paper: a CPU cluster, DistBelief).
Expected: paper, single model, 1 crop: top-5 error 10.07% (89.93% top-5; top-1 not reported; 144 crops:
          7.89%); MobileNet paper's table: 69.8% top-1. torchvision `googlenet` (weights ported from
          TensorFlow): 69.778% / 89.530%, single 224 centre crop of 256.
"""

from cnnjax.reference.recipes import imagenet_recipe


def get_config():
    return imagenet_recipe("googlenet", optimizer="momentum", momentum=0.9, learning_rate=0.08,
                           lr_scaling="linear", batch_size=256, weight_decay=2e-4, schedule="exponential",
                           lr_decay_factor=0.96, num_epochs=90, aux_loss_weight=0.3,
                           model_overrides=dict(aux_logits=True))
