"""Transfer learning beside fine-tuning (which is `init_from` + `freeze`/`lr_multipliers` in training):
off-the-shelf penultimate-layer features of a checkpoint and a logistic-regression probe on them."""
