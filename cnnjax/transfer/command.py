"""`cnnjax features`: arguments and output of the subcommand; the work is in `transfer.features`."""

from __future__ import annotations

import argparse
import pathlib

import numpy as np

from cnnjax.errors import CnnjaxError
from cnnjax.transfer.features import linear_probe, workdir_features


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", required=True, help="training workdir whose best checkpoint gives the features")
    parser.add_argument("--step", type=int, default=None, help="this checkpoint step instead of the best")
    parser.add_argument("--splits", default="train,test", help="comma-separated: train, validation, test")
    parser.add_argument("--data", action="append", default=[], metavar="KEY=VALUE",
                        help="change the run's data, e.g. --data class_subset=(5,6,7,8,9) --data labels_per_class=100")
    parser.add_argument("--max-examples", type=int, default=0, help="only the first N examples of each split")
    parser.add_argument("--out", default=None, metavar="F.npz", help="write <split>_features/<split>_labels here")
    parser.add_argument("--c-reg", type=float, default=1.0,
                        help="inverse L2 strength of the logistic regression fitted on train, scored on the others")
    parser.add_argument("--no-fit", action="store_true", help="only extract (and write) the features")


def run(args: argparse.Namespace) -> None:
    splits = tuple(s.strip() for s in args.splits.split(",") if s.strip())
    if args.out is not None and not pathlib.Path(args.out).expanduser().absolute().parent.is_dir():
        raise CnnjaxError(f"--out {args.out}: its directory does not exist; create it first")
    if not args.no_fit and (len(splits) < 2 or splits[0] != "train"):
        raise CnnjaxError(f"--splits {args.splits}: the probe fits on train and scores the others; list train "
                          "first and at least one more split, or pass --no-fit")
    if args.c_reg <= 0:
        raise CnnjaxError(f"--c-reg must be positive, got {args.c_reg}")
    arrays = workdir_features(args.workdir, splits, args.data, args.step, args.max_examples)
    for name in splits:
        print(f"{name}: features {arrays[f'{name}_features'].shape} (step {int(arrays['step'])})")
    if args.out is not None:
        np.savez(pathlib.Path(args.out).expanduser(), **arrays)
        print(f"wrote {args.out}")
    if args.no_fit:
        return
    for name in splits[1:]:
        result = linear_probe(arrays["train_features"], arrays["train_labels"], arrays[f"{name}_features"],
                              arrays[f"{name}_labels"], args.c_reg)
        print(f"logistic regression (C={args.c_reg:g}) on {result.feature_dim} features: train top-1 "
              f"{100 * result.train_top1:.2f}% ({result.num_train} examples), {name} top-1 "
              f"{100 * result.test_top1:.2f}% ({result.num_test})")
