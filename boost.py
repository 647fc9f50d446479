"""SAMME boosting of training runs: python boost.py --config C --workdir runs/boost --rounds M [--config.key=value ...]

Round m trains <workdir>/round<m> on a resample of the training examples weighted by weights<m>.npy, is
scored on every carved training example, and reweights them (multi-class AdaBoost, SAMME). Writes
boosting.json/.md (per-round error, alpha, member vs ensemble validation/test top-1) and members.json
(`eval.py --members <workdir>`). Re-running the same command resumes; a larger --rounds continues.
"""

from __future__ import annotations

import sys

from cnnjax.cli_support import ArgumentParser, main_guard, nonempty_path, positive_int, stopped_message


def main(argv: list[str]) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="config file with get_config()")
    parser.add_argument("--workdir", required=True, type=nonempty_path, help="the boost's directory")
    parser.add_argument("--rounds", required=True, type=positive_int, metavar="M", help="boosting rounds (members)")
    args, rest = parser.parse_known_args(argv)

    from cnnjax.cli_support import config_overrides
    from cnnjax.train.boosting import BoostSpec, run_boosting

    outcome = run_boosting(BoostSpec(args.config, tuple(config_overrides(parser, rest)), args.rounds), args.workdir)
    if outcome.stop_signal is not None:
        print(stopped_message(outcome.stop_signal, f"saved the current round's step in {args.workdir}", argv),
              file=sys.stderr)
        return 128 + outcome.stop_signal
    for row in outcome.state["report"]:
        print(f"round {row['round']}: alpha {row['alpha']:.3f}, member val top-1 {row['member_validation_top1']:.4f}"
              f", ensemble val top-1 {row['ensemble_validation_top1']:.4f}")
    if outcome.state["stopped"]:
        print(f"stopped early: {outcome.state['stopped']}")
    print(f"wrote {args.workdir}/boosting.md, boosting.json and members.json")
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main, sys.argv[1:], on_interrupt=(
        "interrupted by Ctrl-C (SIGINT); finished rounds are recorded in boosting.json; resume with the same "
        "command")))
