"""The fast Fashion-MNIST recipe: bn_cnn (32-64-128 conv-BN-ReLU) to 93% test within minutes on a 2-core CPU.

Command:  python train.py --config configs/fashion_mnist/fast.py --workdir runs/fmnist_fast
Expected: (to be measured)
"""

from cnnjax.config import base_config


def get_config():
    config = base_config()
    config.model, config.dataset = "bn_cnn", "fashion_mnist"
    config.num_epochs, config.batch_size = 12, 256
    config.optimizer, config.learning_rate, config.momentum = "nesterov", 0.1, 0.9
    config.weight_decay = 5e-4
    config.schedule = "one_cycle"
    config.label_smoothing = 0.1
    config.augment = "flip_lr"
    config.dead_relu_probe = 0
    return config
