"""Hyperparameter sweep: python sweep.py --config C --workdir runs/sweep --grid learning_rate=1e-3,3e-3 \
[--grid model_overrides.act=relu,tanh] [--random N --sweep_seed S] [--cv K --top_k k] [--config.key=value ...]

Every point trains into <workdir>/<index>-<slug> in turn and is scored by its best validation top-1 (with
--cv K: the mean over K folds, then the top_k points are refit on the standard validation carve). Writes
sweep.csv, sweep.md and members.json (best first; `eval.py --members <workdir>@top3`). Re-running the same
command resumes: finished runs are skipped, an interrupted one continues from its last checkpoint.
"""

from __future__ import annotations

import sys

from cnnjax.cli_support import ArgumentParser, main_guard, nonempty_path, positive_int, stopped_message


def main(argv: list[str]) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="config file with get_config()")
    parser.add_argument("--workdir", required=True, type=nonempty_path, help="the sweep's directory")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                        help="an axis (repeat for more); key=loguniform(low,high) or uniform(low,high) with --random")
    parser.add_argument("--random", type=positive_int, metavar="N", help="N random points instead of the whole grid")
    parser.add_argument("--sweep_seed", type=int, default=0, help="seed of --random's draw")
    parser.add_argument("--cv", type=int, default=0, metavar="K", help="score each point by K-fold CV (K >= 2)")
    parser.add_argument("--top_k", type=positive_int, metavar="k",
                        help="with --cv: refit the best k points on the standard carve as members (default 1)")
    args, rest = parser.parse_known_args(argv)

    from cnnjax.cli_support import config_overrides
    from cnnjax.sweep import space
    from cnnjax.sweep.runner import CV_KEYS, SweepSpec, run_sweep

    if args.top_k is not None and not args.cv:
        raise space.SweepError("--top_k chooses the points refit after --cv; without --cv every point is a "
                               "member already (take the best with eval.py --members <workdir>@topK)")
    fixed = config_overrides(parser, rest)
    axes = space.parse_axes(args.grid, [f.partition("=")[0] for f in fixed], CV_KEYS if args.cv else ())
    if args.random is None and args.sweep_seed:
        raise space.SweepError("--sweep_seed seeds --random; add --random N or drop --sweep_seed")
    points = space.random_points(axes, args.random, args.sweep_seed) if args.random else space.grid_points(axes)
    spec = SweepSpec(args.config, tuple(fixed), tuple(points), args.cv, args.top_k or 1)
    outcome = run_sweep(spec, args.workdir)
    if outcome.stop_signal is not None:
        print(stopped_message(outcome.stop_signal, f"saved the current run's step in {args.workdir}", argv),
              file=sys.stderr)
        return 128 + outcome.stop_signal
    for position, result in enumerate(outcome.ranked[:5], 1):
        print(f"{position}. {result.name}: {result.score:.4f}" + (f" ± {result.std:.4f}" if result.cv else ""))
    print(f"wrote {args.workdir}/sweep.csv, sweep.md and members.json")
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main, sys.argv[1:], on_interrupt=(
        "interrupted by Ctrl-C (SIGINT); finished runs are recorded in the sweep's sweep.json; resume with the "
        "same command")))
