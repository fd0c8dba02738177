#!/usr/bin/env bash
# The mini benchmark (configs/mini.yaml) as a Slurm campaign: prepare ->
# a job array of independent workers -> reduce. Measured on 2 cores it is
# about 4 core-hours (README, "The mini benchmark's budget"); 16 workers of
# one core finish in about 15 minutes plus the queue. Extra arguments go to
# `zoobench submit` (--partition, --account, --dry-run, ...).
#   jobs/mini.sh --partition cpu && build/zoobench status configs/mini.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
exec build/zoobench submit configs/mini.yaml --mode array --shards "${SHARDS:-16}" --cpus-per-task 1 \
  --time "${TIME:-1:00:00}" "$@"
