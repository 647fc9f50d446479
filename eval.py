"""Evaluate a trained workdir: python eval.py --workdir runs/x [--step N] --split test --out result.json"""

import argparse
import sys

from cnnjax.cli_support import main_guard


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--step", type=int, default=None, help="default: the best checkpoint (validation top-1)")
    parser.add_argument("--split", default="test", choices=("train", "validation", "test"))
    parser.add_argument("--out", default=None, help="JSON result; a confusion-matrix PNG is written beside it")
    parser.add_argument("--batch_size", type=int, default=None)
    args = parser.parse_args(argv)

    from cnnjax.evaluate.run import evaluate_workdir, format_table

    result = evaluate_workdir(args.workdir, args.split, args.step, args.out, args.batch_size)
    print(format_table(result))
    if args.out:
        print(f"written: {args.out}, {result['confusion_png']}")
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main, sys.argv[1:]))
