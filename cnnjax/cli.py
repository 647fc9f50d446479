"""The `cnnjax` console script: `cnnjax models [PATTERN]`, `cnnjax summary MODEL`, `cnnjax convert MODEL FILE`,
`cnnjax report [--results PATH...] [--out DIR]`,
`cnnjax augment --config CFG [--config.key=value ...] --out grid.png`, `cnnjax features --workdir W [--out F.npz]`,
`cnnjax visualize --workdir W --out DIR`.

Every subcommand is an (help, add_arguments, run) entry of `COMMANDS`, so new ones (training, evaluation)
plug in without touching the dispatch. The tables come from `cnnjax.introspect`, which never imports this
module: here is only argument parsing and error reporting. Expected user errors (unknown model, no match,
too small an input, fewer than one class) print one line `cnnjax: error: ...` on stderr and exit with
status 2, like argparse's own usage errors.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable, Sequence

from cnnjax.convert import files as convert_files
from cnnjax.errors import CnnjaxError
from cnnjax.introspect import format_summary, model_table, summarize
from cnnjax.models import UnknownModelError
from cnnjax import visualize
from cnnjax.reference import command as report_command
from cnnjax.transfer import command as features_command


class UsageError(CnnjaxError):
    """A user mistake worth one line of explanation, not a traceback."""


def add_models_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", nargs="?", default="*",
                        help="shell-style name pattern, e.g. 'resnet*'; a plain word matches as a substring")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")


def _progress(i: int, total: int, name: str) -> None:
    """`[12/43] densenet201` on an interactive stderr while the forward passes are traced."""
    sys.stderr.write(f"\r\033[K[{i + 1}/{total}] {name}")
    sys.stderr.flush()


def run_models(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    interactive = sys.stderr.isatty()
    table = model_table(args.pattern, markdown=args.markdown, progress=_progress if interactive else None)
    if interactive:
        sys.stderr.write("\r\033[K")
    if table is None:
        raise UsageError(f"no registered model matches {args.pattern!r}; run `cnnjax models` for the list")
    print(table)
    if not args.markdown:
        print(f"({time.perf_counter() - start:.1f} s; params and MACs from abstract traces at batch 1)")


def add_summary_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="registered model name (see `cnnjax models`)")
    parser.add_argument("--input-size", type=int, default=None, help="square input side (default: the model's)")
    parser.add_argument("--num-classes", type=int, default=None, help="classifier outputs (default: the model's)")


def run_summary(args: argparse.Namespace) -> None:
    """Bad sizes and class counts raise `CnnjaxError`s inside `summarize`, reported by `main`."""
    print(format_summary(summarize(args.model, args.input_size, args.num_classes)))


def add_augment_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="config file with get_config(); --config.key=value overrides")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--rows", type=int, default=4, help="first row: originals; then augmented passes")
    parser.add_argument("--cols", type=int, default=8, help="training examples per row")
    parser.add_argument("--seed", type=int, default=0, help="seed of the augmentation keys")
    parser.add_argument("--scale", type=int, default=0, help="integer upscaling of each tile (0: at least 64 px)")
    parser.set_defaults(takes_overrides=True)


def run_augment(args: argparse.Namespace) -> None:
    from cnnjax.data.augment.grid import write_grid  # loads TFDS/JAX: only for this command

    path = write_grid(args.config, args.overrides, args.out, args.rows, args.cols, args.seed, args.scale)
    print(f"wrote {path}")


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], None]]] = {
    "models": ("table of every registered model: params, MACs, input size, torchvision twin",
               add_models_arguments, run_models),
    "summary": ("per-layer table of one model: output shapes, activation memory, params, MACs",
                add_summary_arguments, run_summary),
    "convert": ("torchvision weights (.safetensors/.pth) -> Orbax checkpoint of Flax variables",
                convert_files.add_arguments, convert_files.run),
    "report": ("params, MACs and top-1/top-5 of every model: ours (eval.py results) vs published; CSV, Markdown, PNG",
               report_command.add_arguments, report_command.run),
    "augment": ("PNG grid of training examples as the pipeline feeds them: originals, then augmented passes",
                add_augment_arguments, run_augment),
    "features": ("penultimate-layer features of a checkpoint (.npz) and a logistic-regression probe on them",
                 features_command.add_arguments, features_command.run),
    "visualize": ("PNGs of a checkpoint's first-layer filters and first feature maps for a sample input",
                  visualize.add_arguments, visualize.run),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnjax", description="Convolutional image classifiers in JAX/Flax.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, run) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        add_arguments(sub)
        sub.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, overrides = parser.parse_known_args(argv)
    if overrides and not getattr(args, "takes_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(overrides)}")
    args.overrides = overrides
    try:
        args.run(args)
    except (CnnjaxError, UnknownModelError) as err:
        print(f"cnnjax: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `cnnjax models | head`
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
