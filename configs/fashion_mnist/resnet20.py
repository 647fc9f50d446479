"""CIFAR-style ResNet-20 (option-A shortcuts, BatchNorm) on Fashion-MNIST, with crop + flip augmentation.

Command:  python train.py --config configs/fashion_mnist/resnet20.py --workdir runs/fmnist_resnet20
Expected: TBD
"""

from cnnjax.config import base_config


def get_config():
    config = base_config()
    config.model = "resnet20"
    config.dataset = "fashion_mnist"
    config.augment = "random_crop(padding=2)|flip_lr"
    config.num_epochs = 15
    config.batch_size = 128
    config.optimizer = "nesterov"
    config.learning_rate = 0.1
    config.lr_scaling = "linear"  # 0.1 per 256 examples
    config.weight_decay = 5e-4
    config.schedule = "warmup_cosine"
    config.warmup_epochs = 1.0
    return config
