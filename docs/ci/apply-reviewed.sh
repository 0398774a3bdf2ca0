#!/usr/bin/env bash
# Applies the plan reviewed in the pull request, after the merge
# (docs/pr-review.md).
#
#   apply-reviewed.sh CONFIG PLAN [APPLY_ARGS...]
#
# PLAN is the plan file plan-review.sh wrote (the build artefact of the pull
# request). `apply` refuses it when the target moved since it was made ("plan is
# stale"), or when it was changed: plan again and review again then.
# APPLY_ARGS go to `apply` as they are (`--registry-only` for a registry-only
# restore, `--shard 0/3`, ...).
set -euo pipefail
config=${1:?usage: apply-reviewed.sh CONFIG PLAN}
plan=${2:?usage: apply-reviewed.sh CONFIG PLAN}
shift 2
kb=${KAFKA_BACKUP:-kafka-backup}
"$kb" show "$plan"
"$kb" apply "$plan" -c "$config" --auto-approve "$@"
