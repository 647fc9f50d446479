"""LeNet-5 (tanh, average pooling, 61,706 params) on Fashion-MNIST.

Command:  python train.py --config configs/fashion_mnist/lenet5.py --workdir runs/fmnist_lenet5
Expected: (measured, see README) test top-1 = TBD after 10 epochs.
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
