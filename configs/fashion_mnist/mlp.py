"""The lecture's MLP (Flatten -> Dense 256 -> ReLU -> Dense 10) on Fashion-MNIST: the baseline CNNs must beat.

Command:  python train.py --config configs/fashion_mnist/mlp.py --workdir runs/fmnist_mlp
Expected: 89.61% test top-1 after 20 epochs (last epoch is the best validation checkpoint, 89.86%).
"""

from cnnjax.config import adam_cosine_recipe


def get_config():
    config = adam_cosine_recipe("mlp", "fashion_mnist", num_epochs=20, learning_rate=1e-3)
    config.model_overrides.act = "relu"
    return config
