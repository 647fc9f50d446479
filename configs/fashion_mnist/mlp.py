"""The lecture's MLP (Flatten -> Dense 256 -> ReLU -> Dense 10) on Fashion-MNIST: the baseline CNNs must beat.

Command:  python train.py --config configs/fashion_mnist/mlp.py --workdir runs/fmnist_mlp
Expected: 89.61% test top-1 after 20 epochs (last epoch is the best validation checkpoint, 89.86%).
"""

from cnnjax.config import base_config


def get_config():
    config = base_config()
    config.model = "mlp"
    config.model_overrides.act = "relu"
    config.dataset = "fashion_mnist"
    config.num_epochs = 20
    config.batch_size = 128
    config.optimizer = "adam"
    config.learning_rate = 1e-3
    config.schedule = "warmup_cosine"
    config.warmup_epochs = 0.5
    return config
