#!/usr/bin/env bash
# Cloud TPU VM pod slice: start the main job on every worker of the slice at once. Run it from
# your workstation with the gcloud CLI; the repo and a venv (with jax[tpu]) must already be on
# every worker at REPO (e.g. via --worker=all --command="git clone ... && make venv").
#
#   TPU=my-v5e-32 ZONE=us-west4-a launch/tpu_vm.sh CONFIG WORKDIR [--config.a.b=v ...]
#
# One process per TPU VM host drives all its chips; main.py detects the pod slice from the TPU
# metadata and calls jax.distributed.initialize() itself (no coordinator flags needed). WORKDIR
# must be a path every host sees: a mounted shared filesystem (Filestore, or a bucket through
# gcsfuse). Re-running the same command resumes.
#
# Environment: REPO (default '~/songglm_jax': a leading ~/ is the worker's home; write it quoted,
# REPO='~/x', or your shell puts your own home there), PYTHON (default .venv/bin/python, under
# REPO). CONFIG, WORKDIR, REPO, PYTHON and every flag reach the workers' shell (bash) quoted, as
# single words: spaces and shell characters in them are kept literally, never run.
# DRY_RUN=1: every worker prints, as one JSON line, the command it would run, the config's
# fingerprint, its process id and the coordinator it would join -- and starts nothing.
set -euo pipefail
CONFIG=${1:?usage: TPU=name ZONE=zone launch/tpu_vm.sh CONFIG WORKDIR [flags]}
WORKDIR=${2:?usage: TPU=name ZONE=zone launch/tpu_vm.sh CONFIG WORKDIR [flags]}
shift 2
TPU=${TPU:?set TPU to the TPU VM name}
ZONE=${ZONE:?set ZONE to the TPU zone}
REPO=${REPO:-'~/songglm_jax'}
PYTHON=${PYTHON:-.venv/bin/python}
if [[ $REPO == '~' ]]; then  # the worker's home, expanded there
  REMOTE_REPO='~'
elif [[ $REPO == '~/'* ]]; then
  printf -v REMOTE_REPO '~/%q' "${REPO:2}"
else
  printf -v REMOTE_REPO '%q' "$REPO"
fi
printf -v REMOTE_ARGS ' %q' "$PYTHON" -m songglm_jax.main "--config=$CONFIG" "--workdir=$WORKDIR" \
  "$@"
if [[ -n "${DRY_RUN:-}" ]]; then
  echo "dry run: on every worker: cd $REMOTE_REPO &&$REMOTE_ARGS"
  REMOTE_ARGS="$REMOTE_ARGS --dry_run"
fi
gcloud compute tpus tpu-vm ssh "$TPU" --zone="$ZONE" --worker=all \
  --command="cd $REMOTE_REPO &&$REMOTE_ARGS"
