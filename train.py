"""Train a model: python train.py --config configs/fashion_mnist/lenet5.py --workdir runs/lenet5 [--config.key=value ...]

Re-running the same command on an existing workdir resumes it. With --seeds N it trains N ensemble members
into <workdir>/seed<k> (seed = config seed + k; also bootstrap_seed + k when bagging) and lists them in
<workdir>/members.json; --seed_index K trains only member K (one task of an array job).
"""

import signal
import sys

from cnnjax.cli_support import (ArgumentParser, add_launch_arguments, main_guard, nonempty_path, positive_int,
                                 resume_hint, show_config, stopped_message)
from cnnjax.cpu_runtime import reexec_with_hugepage_malloc


def main(argv: list[str]) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="config file with get_config()")
    parser.add_argument("--workdir", required=True, type=nonempty_path, help="checkpoints, metrics and plots go here")
    parser.add_argument("--show_config", action="store_true", help="print the resolved config and exit")
    add_launch_arguments(parser)
    parser.add_argument("--seeds", type=positive_int, metavar="N",
                        help="train N ensemble members into <workdir>/seed0 .. seed<N-1>, one after another")
    parser.add_argument("--seed_index", type=int, metavar="K",
                        help="with --seeds: train only member K (e.g. $SLURM_ARRAY_TASK_ID)")
    args, overrides = parser.parse_known_args(argv)
    if args.seed_index is not None and args.seeds is None:
        parser.error("--seed_index needs --seeds N (the number of members)")

    from cnnjax.train.seeds import member_indices, train_members

    if args.seeds is not None:
        member_indices(args.seeds, args.seed_index)  # a bad --seed_index fails at once, before JAX loads
    from cnnjax.config import load_config
    from cnnjax.cpu_runtime import configure_cpu_devices
    from cnnjax.train.loop import train_and_evaluate
    from cnnjax.train.runtime import check_launch, initialize

    check_launch(args.distributed, args.coordinator_address, args.num_processes, args.process_id)
    config = load_config(args.config, overrides)
    if args.show_config:
        return show_config(config)
    configure_cpu_devices(config.batch_size, config.num_devices, args.distributed)
    initialize(args.distributed, args.coordinator_address, args.num_processes, args.process_id)
    if args.seeds is None:
        workdir, result = args.workdir, train_and_evaluate(config, args.workdir)
    else:
        last = train_members(config, args.workdir, args.seeds, args.seed_index)[-1]
        workdir, result = last.member.workdir, last.result
    if result.preempted:
        stop = signal.Signals(result.stop_signal or signal.SIGTERM)
        print(stopped_message(stop, f"saved step {result.last_step} in {workdir}", argv), file=sys.stderr)
        return 128 + stop
    return 0


if __name__ == "__main__":
    reexec_with_hugepage_malloc()
    sys.exit(main_guard(main, sys.argv[1:], on_interrupt=(
        "interrupted by Ctrl-C (SIGINT); stopped without saving a new checkpoint (those already in the workdir "
        f"are intact); {resume_hint(sys.argv[1:])}")))
