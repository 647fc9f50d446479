"""`cnnjax report`: arguments and output of the subcommand; the work is in `report`, `results`, `figure`."""

from __future__ import annotations

import argparse
import sys

from cnnjax.reference.figure import complexity_figure
from cnnjax.reference.report import build_rows, check_out_dir, comparison_markdown, write_report
from cnnjax.reference.results import read_results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", nargs="+", default=[], metavar="PATH",
                        help="eval.py --out JSON files, or directories holding them")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="write report.md, results.csv, published.csv and complexity.png here")
    parser.add_argument("--pattern", default="*", help="shell-style model name pattern, e.g. 'resnet*'")


def run(args: argparse.Namespace) -> None:
    """Reads the results first, so a bad file fails before the models are traced."""
    evaluations = read_results(args.results)
    if args.out is not None:
        check_out_dir(args.out)  # a missing parent fails before the ~10 s of tracing
    progress = None
    if sys.stderr.isatty():
        progress = lambda i, total, name: sys.stderr.write(f"\r\033[K[{i + 1}/{total}] {name}")
    rows = build_rows(evaluations, args.pattern, progress)
    if progress:
        sys.stderr.write("\r\033[K")
    print(comparison_markdown(rows))
    if args.out is not None:
        for path in write_report(rows, args.out, complexity_figure):
            print(f"wrote {path}")
