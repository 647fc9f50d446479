"""LeNet-5 (tanh, average pooling, 61,706 params) on Fashion-MNIST.

Command:  python train.py --config configs/fashion_mnist/lenet5.py --workdir runs/fmnist_lenet5
Expected: 90.66% test top-1 after 20 epochs (best validation checkpoint, epoch 19; validation 90.50%).
"""

from cnnjax.config import base_config


def get_config():
    config = base_config()
    config.model = "lenet5"
    config.dataset = "fashion_mnist"
    config.num_epochs = 20
    config.batch_size = 128
    config.optimizer = "adam"
    config.learning_rate = 2e-3
    config.schedule = "warmup_cosine"
    config.warmup_epochs = 0.5
    return config
