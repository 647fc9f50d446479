"""Train a model: python train.py --config configs/fashion_mnist/lenet5.py --workdir runs/lenet5 [--config.key=value ...]

Re-running the same command on an existing workdir resumes it.
"""

import argparse
import sys

from cnnjax.cli_support import main_guard, show_config


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="config file with get_config()")
    parser.add_argument("--workdir", required=True, help="checkpoints, metrics and plots go here")
    parser.add_argument("--show_config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--distributed", action="store_true", help="multi-host: call jax.distributed.initialize()")
    args, overrides = parser.parse_known_args(argv)

    from cnnjax.config import load_config
    from cnnjax.train.loop import train_and_evaluate
    from cnnjax.train.runtime import initialize

    config = load_config(args.config, overrides)
    if args.show_config:
        return show_config(config)
    initialize(distributed=args.distributed)
    result = train_and_evaluate(config, args.workdir)
    return 143 if result.preempted else 0


if __name__ == "__main__":
    sys.exit(main_guard(main, sys.argv[1:]))
