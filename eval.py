"""Evaluate a trained workdir: python eval.py --workdir runs/x [--step N] --split test --out result.json

or converted torchvision weights: python eval.py --workdir ckpt/resnet50 --model resnet50 --dataset imagenet2012
"""

import sys

from cnnjax.cli_support import ArgumentParser, main_guard, nonempty_path, positive_int


def main(argv: list[str]) -> int:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", required=True, type=nonempty_path)
    parser.add_argument("--step", type=int, default=None, help="default: the best checkpoint (validation top-1)")
    parser.add_argument("--split", default="test", choices=("train", "validation", "test"))
    parser.add_argument("--out", default=None, help="JSON result; a confusion-matrix PNG is written beside it")
    parser.add_argument("--batch_size", type=positive_int, default=None)
    parser.add_argument("--model", default=None, help="converted weights (cnnjax convert --out): the registry model")
    parser.add_argument("--dataset", default=None, help="converted weights: the TFDS dataset to score them on")
    parser.add_argument("--num_examples", type=positive_int, default=None, help="score only the first N examples")
    args = parser.parse_args(argv)

    from cnnjax.evaluate.run import evaluate_workdir, format_table

    result = evaluate_workdir(args.workdir, args.split, args.step, args.out, args.batch_size, model=args.model,
                              dataset=args.dataset, num_examples=args.num_examples)
    print(format_table(result))
    if args.out:
        print(f"written: {args.out}, {result['confusion_png']}, {result['logits_npy']}")
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main, sys.argv[1:], on_interrupt="interrupted by Ctrl-C (SIGINT); evaluation stopped"))
