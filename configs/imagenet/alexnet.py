"""AlexNet as in the paper (Krizhevsky et al. 2012): two-tower grouped convs, LRN, 60,965,224 parameters.

Recipe:   SGD momentum 0.9, lr 0.01, batch 128, weight decay 5e-4 (kernels), dropout 0.5 in fc6/fc7,
          lr ÷10 when validation top-1 stops improving (plateau, patience 5 epochs; the paper divided 3 times),
          90 epochs ("roughly 90 cycles"), 224 crops of 256-resized images + horizontal flips (the streaming
          pipeline's random-resized crop limited to >= (224/256)^2 of the area: FIXED_SCALE_CROP).
          The paper's 10-crop test is the streaming pipeline's stream.ten_crop=True at evaluation.
          The paper's "fancy PCA" lighting noise (sec. 4.1, credited with ~1% top-1) is applied on device to
          the host's crops: augment="fancy_pca(eig='imagenet')", alpha ~ N(0, 0.1) per image along ImageNet's
          RGB principal components (fb.resnet.torch's published eigenpairs; a streamed run has no pass over
          the training set to compute its own).
          Not reproduced: the biases initialised to 1 in conv2/4/5 and fc.
Command:  python train.py --config configs/imagenet/alexnet.py --workdir runs/alexnet
Cluster:  scripts/launch_slurm.sh configs/imagenet/alexnet.py runs/alexnet
Hardware: one GPU (the paper: 2 GTX 580 3 GB, 5-6 days); batch 128 fits a 16 GB card in float32.
Expected: paper, 1 CNN, ILSVRC-2012 val, 10-crop (4 corners + centre of 256, and flips): 59.3% / 81.8%
          top-1/top-5 (error 40.7 / 18.2). torchvision's `alexnet` is the one-tower variant (our
          `alexnet_owt`, 61,100,840 params): 56.522% / 79.066%, single 224 centre crop of 256.
"""

from cnnjax.reference.recipes import FIXED_SCALE_CROP, imagenet_recipe


def get_config():
    return imagenet_recipe("alexnet", optimizer="momentum", momentum=0.9, learning_rate=0.01, batch_size=128,
                           weight_decay=5e-4, schedule="plateau", lr_decay_factor=0.1, plateau_patience=5,
                           num_epochs=90, model_overrides=dict(dropout=0.5), stream=FIXED_SCALE_CROP,
                           augment="fancy_pca(eig='imagenet')")
