"""Prepares a dataset that TFDS cannot prepare here, into TFDS' own format, without TensorFlow.

    python -m cnnjax.data.prepare imagenet2012 --manual_dir DIR [--data_dir D]

DIR holds ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar (TFDS' manual-download layout); the dataset
is written to D/imagenet2012/5.1.0 (D defaults to $TFDS_DATA_DIR or ~/tensorflow_datasets), where
`tfds.builder("imagenet2012", data_dir=D, file_format="array_record")` and cnnjax's loaders find it.
"""

from __future__ import annotations

import sys

from cnnjax.cli_support import ArgumentParser, main_guard, nonempty_path, positive_int


def main(argv: list[str]) -> int:
    parser = ArgumentParser(prog="python -m cnnjax.data.prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=["imagenet2012"])
    parser.add_argument("--manual_dir", type=nonempty_path, required=True,
                        help="directory holding ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar")
    parser.add_argument("--data_dir", default="", help="TFDS data directory (default: $TFDS_DATA_DIR or "
                        "~/tensorflow_datasets)")
    parser.add_argument("--validation_labels", default="", help="one synset per line for the validation images "
                        "in sorted name order (default: DIR/validation_labels.txt if present, else TFDS' own)")
    parser.add_argument("--num_shards", type=positive_int, default=0,
                        help="shards per split (default: TFDS' choice by size, 1024 for ImageNet's train split)")
    args = parser.parse_args(argv)

    from cnnjax.data import imagenet  # after parsing: --help stays fast

    path = imagenet.prepare(args.manual_dir, args.data_dir, args.validation_labels, args.num_shards)
    print(f"{args.dataset} is prepared in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main, sys.argv[1:],
                        on_interrupt="interrupted (SIGINT); nothing is prepared: run the command again to start over"))
