"""The Keras example CNN of the lectures (conv 32-32-pool-64-64-pool, dense 512, dropout) on Fashion-MNIST.

Command:  python train.py --config configs/fashion_mnist/keras_cnn.py --workdir runs/fmnist_keras_cnn
Expected: 90.24% test top-1 after 3 epochs (validation 89.86%). XLA:CPU computes this net's convolution
          weight gradients slowly (~4 min/epoch on 2 cores), hence only 3 epochs here; on an accelerator raise
          --config.num_epochs.
"""

from cnnjax.config import adam_cosine_recipe


def get_config():
    config = adam_cosine_recipe("keras_cnn", "fashion_mnist", num_epochs=3, learning_rate=1e-3)
    return config
