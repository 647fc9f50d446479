"""LeNet-5 (tanh, average pooling, 61,706 params) on Fashion-MNIST.

Command:  python train.py --config configs/fashion_mnist/lenet5.py --workdir runs/fmnist_lenet5
Expected: 90.66% test top-1 after 20 epochs (best validation checkpoint, epoch 19; validation 90.50%).
"""

from cnnjax.config import adam_cosine_recipe


def get_config():
    config = adam_cosine_recipe("lenet5", "fashion_mnist", num_epochs=20, learning_rate=2e-3)
    return config
