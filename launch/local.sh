#!/usr/bin/env bash
# Run the main job on this machine: one process over all its local devices (CPU, or every GPU /
# TPU chip of the host), or N processes on localhost that form one mesh (testing multi-process
# code without a cluster; on CPU the processes talk through gloo).
#
#   launch/local.sh CONFIG WORKDIR [--config.a.b=v ...]             one process
#   NUM_PROCESSES=2 launch/local.sh CONFIG WORKDIR [...]             2 processes, one mesh
#
# Environment: NUM_PROCESSES (default 1), PORT (coordinator port, default 12355), PYTHON (default
# .venv/bin/python), CPU_DEVICES (CPU only: fake this many devices per process, e.g. 8 to try a
# 2x2x2 mesh: --config.mesh.data=2 --config.mesh.fsdp=2 --config.mesh.tensor=2).
# Re-running the same command resumes from the newest checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $# -lt 2 ]]; then
  sed -n '2,12p' "$0" >&2
  exit 2
fi
CONFIG=$1; WORKDIR=$2; shift 2
PYTHON=${PYTHON:-.venv/bin/python}
NUM_PROCESSES=${NUM_PROCESSES:-1}
PORT=${PORT:-12355}
# glibc malloc without returning memory to the OS between steps: 1.3-1.4x faster CPU steps
# (benchmarks/train_bench.py); harmless elsewhere. The one definition: launch/glibc_tunables.
export GLIBC_TUNABLES=${GLIBC_TUNABLES:-$(<launch/glibc_tunables)}
if [[ -n "${CPU_DEVICES:-}" ]]; then
  export XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=${CPU_DEVICES}"
fi
if [[ "$NUM_PROCESSES" == 1 ]]; then
  exec "$PYTHON" -m songglm_jax.main --config="$CONFIG" --workdir="$WORKDIR" "$@"
fi
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT INT TERM
for ((i = 0; i < NUM_PROCESSES; i++)); do
  # Only process 0 writes logs and files; the others' console output goes to WORKDIR/logs/.
  mkdir -p "$WORKDIR/logs"
  if [[ $i == 0 ]]; then out=/dev/stdout; else out="$WORKDIR/logs/process_$i.txt"; fi
  "$PYTHON" -m songglm_jax.main --config="$CONFIG" --workdir="$WORKDIR" \
      --coordinator_address="localhost:$PORT" --num_processes="$NUM_PROCESSES" \
      --process_id="$i" "$@" >"$out" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
trap - EXIT
exit $status
