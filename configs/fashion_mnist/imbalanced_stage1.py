"""Seed 004's two-stage fine-tuning for class imbalance, stage 1: train on the classes with many examples only.

The data: Fashion-MNIST made imbalanced (`class_counts`): classes 0-4 (T-shirt, trouser, pullover, dress,
coat) keep 5000 training examples each, classes 5-9 (sandal, shirt, sneaker, bag, ankle boot) 100 each
(seeded by validation_seed; validation and test keep all classes, untouched). Stage 1 trains on classes 0-4
only (`train_classes`): each of its validation epochs therefore scores at most 50% top-1. Stage 2
(`imbalanced_stage2.py`) continues from this run's weights on all classes.

Commands:
  python train.py --config configs/fashion_mnist/imbalanced_stage1.py --workdir runs/imb_stage1
  python train.py --config configs/fashion_mnist/imbalanced_stage2.py --workdir runs/imb_stage2 \\
      --config.init_from=runs/imb_stage1
  python eval.py --workdir runs/imb_stage2 --split test
Expected: stage 1 ends at 46.94% validation top-1 (of at most 50%: classes 5-9 are never trained on); after
          stage 2, 86.43% test top-1 with 84.26% mean test recall of the minority classes 5-9 (88.60% on 0-4).
          The same data trained on all classes for the same 15 epochs without balancing (this config with
          --config.train_classes='()' --config.num_epochs=15): 82.74% test top-1, minority recall 71.92%
          (93.56% on 0-4). Measured once each (seed 0) on a shared 2-core CPU; recall from `eval.py --out`'s
          logits.
"""

from cnnjax.config import adam_cosine_recipe


def get_config():
    config = adam_cosine_recipe("lenet5", "fashion_mnist", num_epochs=10, learning_rate=2e-3)
    config.model_overrides.act = "relu"
    config.class_counts = (5000,) * 5 + (100,) * 5
    config.train_classes = (0, 1, 2, 3, 4)
    return config
