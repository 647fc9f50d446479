#!/usr/bin/env bash
# Multi-host training on a Cloud TPU VM slice (e.g. v4-32: 4 hosts), one command from your workstation:
#
#   scripts/launch_tpu_vm.sh TPU_NAME ZONE CONFIG WORKDIR [--config.key=value ...]
#
# It runs train.py --distributed on every worker of the slice at once (gcloud ... ssh --worker=all);
# jax.distributed.initialize() finds the coordinator and the process ids from the TPU metadata by itself.
# Every worker needs this repository at REMOTE_REPO (default ~/cnnjax) with its .venv set up
# (`make .venv/.installed`), and WORKDIR on storage all workers share (e.g. a Filestore/NFS mount).
# A preempted slice's processes agree on a step, save it and exit 143; the same command resumes.
# GCLOUD overrides the gcloud binary; PROJECT selects a project.
set -euo pipefail

usage="usage: scripts/launch_tpu_vm.sh TPU_NAME ZONE CONFIG WORKDIR [--config.key=value ...]"
if [ $# -lt 4 ]; then echo "error: $usage" >&2; exit 2; fi
tpu=$1 zone=$2 config=$3 workdir=$4
shift 4
remote_repo=${REMOTE_REPO:-'~/cnnjax'}
command="cd $remote_repo && .venv/bin/python train.py --config $(printf %q "$config") --workdir $(printf %q "$workdir") --distributed"
for arg in "$@"; do command+=" $(printf %q "$arg")"; done
project=()
if [ -n "${PROJECT:-}" ]; then project=(--project="$PROJECT"); fi
exec "${GCLOUD:-gcloud}" compute tpus tpu-vm ssh "$tpu" --zone="$zone" "${project[@]}" --worker=all \
  --command="$command"
