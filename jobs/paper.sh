#!/usr/bin/env bash
# The seed paper's campaign (configs/paper.yaml) on a GPU cluster: prepare ->
# a job array of workers with one GPU each -> reduce. ZOO_ROOT is the folder
# of the exported TorchScript zoo (configs/paper-zoo.yaml), DATA_ROOT that of
# the packed targets, both on a file system every node sees; they are passed
# to every job. `build/zoobench plan configs/paper.yaml` says what is still
# missing and what the campaign costs. Extra arguments go to `zoobench submit`
# (--partition, --account, --dry-run, ...). The zoo lies outside the folder of
# its manifest, hence --allow-outside-zoo; its files must be pinned first:
#   ZOO_ROOT=/shared/zoo build/zoobench zoo pin configs/paper-zoo.yaml --allow-outside-zoo
#   ZOO_ROOT=/shared/zoo DATA_ROOT=/shared/data jobs/paper.sh --partition gpu
set -euo pipefail
: "${ZOO_ROOT:?set ZOO_ROOT to the folder of the exported zoo (configs/paper-zoo.yaml)}"
: "${DATA_ROOT:?set DATA_ROOT to the folder of the packed target data sets}"
# Absolute before the cd below, and as every job will see them.
ZOO_ROOT=$(realpath -m -- "$ZOO_ROOT") DATA_ROOT=$(realpath -m -- "$DATA_ROOT")
export ZOO_ROOT DATA_ROOT
cd "$(dirname "$0")/.."
exec build/zoobench submit configs/paper.yaml --mode array --shards "${SHARDS:-64}" --gpus-per-node 1 \
  --cpus-per-task "${CPUS:-8}" --time "${TIME:-12:00:00}" --env "ZOO_ROOT=$ZOO_ROOT" --env "DATA_ROOT=$DATA_ROOT" --allow-outside-zoo "$@"
