"""The accurate Fashion-MNIST recipe: bn_cnn6 (32x2-64x2-128x2 conv-BN-ReLU) with crop, flip and random erasing.

Command:  python train.py --config configs/fashion_mnist/accurate.py --workdir runs/fmnist_accurate
Expected: (to be measured)
"""

from cnnjax.config import one_cycle_recipe


def get_config():
    config = one_cycle_recipe("bn_cnn6", "fashion_mnist", num_epochs=36, batch_size=128, learning_rate=0.05)
    config.augment = "random_crop(padding=2)|flip_lr|random_erasing"
    config.ema_decay = 0.999
    config.dead_relu_probe = 0
    return config
