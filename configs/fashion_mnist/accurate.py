"""The accurate Fashion-MNIST recipe: bn_cnn6 (32x2-64x2-128x2 conv-BN-ReLU) with crop, flip and random erasing.

Command:  python train.py --config configs/fashion_mnist/accurate.py --workdir runs/fmnist_accurate
Expected: (to be measured)
"""

from cnnjax.config import base_config


def get_config():
    config = base_config()
    config.model, config.dataset = "bn_cnn6", "fashion_mnist"
    config.num_epochs, config.batch_size = 36, 128
    config.optimizer, config.learning_rate, config.momentum = "nesterov", 0.05, 0.9
    config.weight_decay = 5e-4
    config.schedule = "one_cycle"
    config.label_smoothing = 0.1
    config.augment = "random_crop(padding=2)|flip_lr|random_erasing"
    config.ema_decay = 0.999
    config.dead_relu_probe = 0
    return config
