"""The Keras example CNN of the lectures (conv 32-32-pool-64-64-pool, dense 512, dropout) on Fashion-MNIST.

Command:  python train.py --config configs/fashion_mnist/keras_cnn.py --workdir runs/fmnist_keras_cnn
Expected: 90.24% test top-1 after 3 epochs (validation 89.86%). XLA:CPU computes this net's convolution
          weight gradients slowly (~4 min/epoch on 2 cores), hence only 3 epochs here; on an accelerator raise
          --config.num_epochs.
"""

from cnnjax.config import base_config


def get_config():
    config = base_config()
    config.model = "keras_cnn"
    config.dataset = "fashion_mnist"
    config.num_epochs = 3
    config.batch_size = 128
    config.optimizer = "adam"
    config.learning_rate = 1e-3
    config.schedule = "warmup_cosine"
    config.warmup_epochs = 0.5
    return config
