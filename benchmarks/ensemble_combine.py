"""Ensemble analysis time: every combiner (incl. the cross-fitted stack) plus the bootstraps, on synthetic members.

Why: the analysis runs after every ensemble evaluation, on one CPU process; it must stay a few seconds even
for 10 members x 10k examples, or people will skip the honest (cross-fitted) scores. Target: the whole
`analyse` call under 5 s on 2 CPU cores.

The members' logits are realistic in the ways that cost time: correlated members (a shared per-example
"difficulty" term plus member noise), different accuracies and calibrations (per-member temperature),
seeded. Fit and report splits are independent draws.

Usage:
    python benchmarks/ensemble_combine.py                       # 10 members, 10k + 10k examples, 10 classes
    python benchmarks/ensemble_combine.py --members 5 --examples 2000 --stack-model mlp
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from typing import Sequence

import numpy as np

from cnnjax.ensemble.analysis import analyse
from cnnjax.ensemble.combiners import COMBINERS

TARGET_SECONDS = 5.0


def synthetic_members(members: int, examples: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(members, examples, classes) float32 logits and labels: shared difficulty + member noise, varied skill."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, examples)
    onehot = np.eye(classes)[labels]
    shared = rng.normal(size=(examples, classes))  # what makes an example hard for every member
    skill = np.linspace(2.4, 3.2, members)
    temperature = rng.uniform(0.6, 1.6, members)  # some members over-, some under-confident
    logits = [(skill[m] * onehot + 0.9 * shared + 0.7 * rng.normal(size=(examples, classes))) / temperature[m]
              for m in range(members)]
    return np.stack(logits).astype(np.float32), labels


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=int, default=10)
    p.add_argument("--examples", type=int, default=10_000, help="per split (fit and report)")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--stack-model", default="logistic", choices=("logistic", "mlp"))
    p.add_argument("--temperature-scaling", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"{platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, numpy "
          f"{np.__version__}; load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    fit_logits, fit_labels = synthetic_members(args.members, args.examples, args.classes, args.seed)
    report_logits, report_labels = synthetic_members(args.members, args.examples, args.classes, args.seed + 1)
    names = [f"member{m}" for m in range(args.members)]
    print(f"{args.members} members x {args.examples} fit + {args.examples} report examples x {args.classes} classes, "
          f"{args.folds}-fold cross-fitting, stack model {args.stack_model}")
    start = time.perf_counter()
    result = analyse(fit_logits, fit_labels, report_logits, report_labels, names, COMBINERS, folds=args.folds,
                     seed=args.seed, temperature_scaling=args.temperature_scaling, stack_model=args.stack_model)
    total = time.perf_counter() - start
    print(f"\nbest member {result['best_member']}: top1 {result['members'][result['best_member_index']]['top1']:.4f}")
    print(f"{'combiner':<12}{'seconds':>9}{'top1':>9}{'vs best':>10}")
    for name in COMBINERS:
        c = result["combiners"][name]
        print(f"{name:<12}{result['timings'][name]:>9.3f}{c['top1']:>9.4f}{c['vs_best']['diff']:>+10.4f}")
    verdict = "PASS" if total < TARGET_SECONDS else "FAIL"
    print(f"\ntotal analyse(): {total:.2f} s (target < {TARGET_SECONDS:.0f} s on 2 CPU cores): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
