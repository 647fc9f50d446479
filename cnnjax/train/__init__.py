"""Training: state, pure step, data parallelism, optimizers, checkpoints and the loop."""
