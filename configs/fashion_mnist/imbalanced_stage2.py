"""Seed 004's two-stage fine-tuning for class imbalance, stage 2: continue on all classes from stage 1.

Stage 1's config (`imbalanced_stage1.py`, same imbalanced data and model) with every class trained on,
oversampled so each class is drawn equally often (`class_balance="oversample"`), at a lower learning rate
for fewer epochs. Give stage 1's workdir as `--config.init_from` (its weights start this run; the head
already has all 10 outputs). The normalisation statistics are those of the whole imbalanced training split
in both stages (`train_classes` does not change them), so the weights meet the same inputs.

Command:  python train.py --config configs/fashion_mnist/imbalanced_stage2.py --workdir runs/imb_stage2 \\
              --config.init_from=runs/imb_stage1
Expected: 86.43% test top-1, minority-class (5-9) recall 84.26% vs 71.92% without the two stages and
          balancing; see imbalanced_stage1.py for the comparison.
"""

import pathlib

from cnnjax.config import load_config


def get_config():
    config = load_config(str(pathlib.Path(__file__).with_name("imbalanced_stage1.py")))
    config.train_classes = ()
    config.class_balance = "oversample"
    config.num_epochs, config.learning_rate, config.warmup_epochs = 5, 5e-4, 0.0
    return config
