"""Evaluate a trained workdir: python eval.py --workdir runs/x [--step N] --split test --out result.json [--tta flip]

or converted torchvision weights: python eval.py --workdir ckpt/resnet50 --model resnet50 --dataset imagenet2012

or an ensemble of checkpoints:   python eval.py --members runs/a runs/b 'runs/seed*' runs/c@1200 runs/d@all \\
                                     --combiners vote,mean,logit_mean,weighted,stack,greedy --out runs/ens
"""

import sys

from cnnjax.cli_support import ArgumentParser, UsageError, add_launch_arguments, main_guard, nonempty_path, positive_int
from cnnjax.cpu_runtime import reexec_with_hugepage_malloc

MAX_PRINTED_CLASSES = 50  # more classes (ImageNet): the per-class table is in the --out JSON only


def main(argv: list[str]) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--workdir", type=nonempty_path, help="one training workdir (or converted weights)")
    which.add_argument("--members", nargs="+", type=nonempty_path, metavar="SPEC",
                       help="ensemble members: WORKDIR (best checkpoint), WORKDIR@STEP, WORKDIR@all, a group "
                            "directory (members.json) or GROUP@topK; glob patterns expand")
    parser.add_argument("--step", type=int, default=None, help="default: the best checkpoint (validation top-1)")
    parser.add_argument("--split", default=None, choices=("train", "validation", "test"), help="default: test")
    parser.add_argument("--out", default=None, help="--workdir: JSON result (a confusion-matrix PNG beside it); "
                                                    "--members: the report directory (required)")
    parser.add_argument("--batch_size", type=positive_int, default=None)
    parser.add_argument("--model", default=None, help="converted weights (cnnjax convert --out): the registry model")
    parser.add_argument("--dataset", default=None, help="converted weights: the TFDS dataset to score them on")
    parser.add_argument("--num_examples", type=positive_int, default=None, help="score only the first N examples")
    add_launch_arguments(parser)  # a multi-host evaluation: every process scores its share of each batch
    parser.add_argument("--ema", action="store_true", help="--workdir: score the checkpoint's moving average of the "
                                                           "weights (a run trained with ema_decay > 0)")
    parser.add_argument("--tta", default=None, help="--workdir: test-time augmentation, probabilities averaged over "
                                                    "views: none (default), flip, crops (4 corners + centre of the "
                                                    "padded image) or flip_crops")
    ensemble = parser.add_argument_group("ensembles (--members)")
    ensemble.add_argument("--combiners", default="all", help="comma-separated: vote,mean,logit_mean,weighted,stack,"
                                                             "greedy (default: all)")
    ensemble.add_argument("--fit_split", default="validation", help="combiners are fitted here (default validation)")
    ensemble.add_argument("--report_split", default="test", help="and reported here (default test)")
    ensemble.add_argument("--folds", type=positive_int, default=5, help="cross-fitting folds of the fit-split scores")
    ensemble.add_argument("--seed", type=int, default=0, help="folds, bootstrap and meta-learner initialisation")
    ensemble.add_argument("--temperature_scaling", action="store_true", help="fit a temperature per combiner")
    ensemble.add_argument("--stack_model", default="logistic",
                          help="logistic (L2, C=1 as scikit-learn) or mlp, with settings: 'logistic(C=0.01)', "
                               "'mlp(hidden=32,alpha=10)'")
    ensemble.add_argument("--no_cache", action="store_true", help="recompute member logits, write no cache")
    ensemble.add_argument("--vmap_members", action="store_true",
                          help="vmap members of one architecture (batched kernels) instead of running them in turn "
                               "in one program; slower on CPU (benchmarks/ensemble_inference.py)")
    args = parser.parse_args(argv)
    if args.tta is not None:
        from cnnjax.evaluate.tta import check_mode

        check_mode(args.tta)  # a bad mode is one line before anything loads
    from cnnjax.train.runtime import check_launch, initialize

    check_launch(args.distributed, args.coordinator_address, args.num_processes, args.process_id)
    initialize(args.distributed, args.coordinator_address, args.num_processes, args.process_id)
    if args.members is not None:
        return _ensemble(args)
    from cnnjax.evaluate.run import evaluate_workdir, format_table

    result = evaluate_workdir(args.workdir, args.split or "test", args.step, args.out, args.batch_size, model=args.model,
                              dataset=args.dataset, num_examples=args.num_examples, ema=args.ema,
                              tta=args.tta or "none")
    import jax

    if jax.process_index() == 0:  # process 0 of a multi-process evaluation reports
        print(format_table(result))
        if "per_class" in result and len(result["per_class"]["support"]) <= MAX_PRINTED_CLASSES:
            from cnnjax.evaluate.per_class import format_per_class

            print(format_per_class(result["per_class"], result["per_class"]["class_names"]))
        if args.out:
            print(f"written: {args.out}, {result['confusion_png']}, {result['logits_npy']}")
    return 0


def _ensemble(args) -> int:
    if args.split is not None:
        raise UsageError("eval.py: --split is for --workdir; with --members use --fit_split and --report_split")
    misplaced = [flag for flag, value in (("--step", args.step), ("--model", args.model),
                                          ("--dataset", args.dataset), ("--num_examples", args.num_examples),
                                          ("--ema", args.ema or None), ("--tta", args.tta))
                 if value is not None]
    if misplaced:
        raise UsageError(f"eval.py: {misplaced[0]} is for --workdir; with --members give the step as "
                         "WORKDIR@STEP")
    if args.out is None:
        raise UsageError("eval.py: --members needs --out DIR for its report (report.json, report.md, PNGs)")
    from cnnjax.ensemble.run import evaluate_ensemble, format_summary

    result = evaluate_ensemble(args.members, args.out, args.combiners, args.fit_split, args.report_split,
                               batch_size=args.batch_size, folds=args.folds, seed=args.seed,
                               temperature_scaling=args.temperature_scaling, stack_model=args.stack_model,
                               use_cache=not args.no_cache, vectorize_members=args.vmap_members)
    if result["files"]:  # process 0 of a multi-process evaluation writes and reports
        print(format_summary(result))
        print(f"written: {', '.join(result['files'])}")
    return 0


if __name__ == "__main__":
    reexec_with_hugepage_malloc()
    sys.exit(main_guard(main, sys.argv[1:], on_interrupt="interrupted by Ctrl-C (SIGINT); evaluation stopped"))
