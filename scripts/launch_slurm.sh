#!/usr/bin/env bash
# Multi-host training on a SLURM cluster, one command:
#
#   scripts/launch_slurm.sh CONFIG WORKDIR [--config.key=value ...]
#
# Run on a login node, it submits itself with sbatch (one task per node; resources from the environment:
# NODES=1, GPUS_PER_NODE=8 (0: none requested), CPUS_PER_TASK=16, TIME=24:00:00, PARTITION, ACCOUNT,
# SBATCH_EXTRA="..." for anything else). Run inside an allocation (by sbatch, or under salloc), it starts
# train.py --distributed on every node with srun; jax.distributed.initialize() reads the coordinator
# (first node), the process count and each process's id from SLURM's variables.
#
# WORKDIR must be on a filesystem every node sees (checkpoints are written there by all processes).
# SLURM sends SIGTERM 120 s before the time limit (--signal): the processes agree on a step, save it and
# exit 143; submitting the same command again resumes from it (so does a --requeue after a preemption).
# CNNJAX_PYTHON overrides the interpreter (default: the repository's .venv).
set -euo pipefail

usage="usage: scripts/launch_slurm.sh CONFIG WORKDIR [--config.key=value ...]"
if [ $# -lt 2 ]; then echo "error: $usage" >&2; exit 2; fi
config=$1 workdir=$2
shift 2
if [ ! -f "$config" ]; then echo "error: config file $config does not exist (see configs/); $usage" >&2; exit 2; fi
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${CNNJAX_PYTHON:-$repo/.venv/bin/python}
if [ ! -x "$python" ]; then
  echo "error: $python is not an interpreter: run 'make .venv/.installed' in $repo or set CNNJAX_PYTHON" >&2
  exit 2
fi

if [ -z "${SLURM_JOB_ID:-}" ]; then  # on a login node: submit this script as the batch job
  mkdir -p "$workdir"
  gpus=${GPUS_PER_NODE:-8}
  args=(--job-name="cnnjax-$(basename "$workdir")" --nodes="${NODES:-1}" --ntasks-per-node=1
        --cpus-per-task="${CPUS_PER_TASK:-16}" --time="${TIME:-24:00:00}" --signal=TERM@120 --requeue
        --open-mode=append --output="$workdir/slurm-%j.out")
  if [ "$gpus" != 0 ]; then args+=(--gpus-per-node="$gpus"); fi
  if [ -n "${PARTITION:-}" ]; then args+=(--partition="$PARTITION"); fi
  if [ -n "${ACCOUNT:-}" ]; then args+=(--account="$ACCOUNT"); fi
  # shellcheck disable=SC2206  # SBATCH_EXTRA is split into words on purpose
  extra=(${SBATCH_EXTRA:-})
  exec "${SBATCH:-sbatch}" "${args[@]}" "${extra[@]}" "$repo/scripts/launch_slurm.sh" "$config" "$workdir" "$@"
fi

# Inside the allocation: one process per node, each using all of its node's accelerators.
exec "${SRUN:-srun}" --ntasks-per-node=1 --kill-on-bad-exit=1 \
  "$python" "$repo/train.py" --config "$config" --workdir "$workdir" --distributed "$@"
