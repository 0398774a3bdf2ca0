#!/usr/bin/env bash
# Plans a restore for review in a pull request (docs/pr-review.md).
#
#   plan-review.sh CONFIG [OUT_DIR]
#
# Writes OUT_DIR (default: .) /plan.json, the plan file `apply` takes after the
# merge (keep it as the build artefact), and /plan.md, the pull-request comment:
# a marker line naming CONFIG (to find and update the same comment on the next
# push) and the plan in Markdown, summarised when it is larger than a comment
# takes. Prints `changes=true` or `changes=false` on stdout (append it to
# $GITHUB_OUTPUT). Exit 0: no changes, or changes to review; 1: conflicts (the
# plan says which, `apply` would refuse it) or an error: the check fails.
#
# KAFKA_BACKUP: the binary (default: `kafka-backup` on the PATH).
set -uo pipefail
config=${1:?usage: plan-review.sh CONFIG [OUT_DIR]}
out=${2:-.}
kb=${KAFKA_BACKUP:-kafka-backup}
mkdir -p "$out"
{
  echo "<!-- kafka-backup plan: $config -->"
  "$kb" plan -c "$config" -o "$out/plan.json" --format markdown --detailed-exitcode
} >"$out/plan.md"
code=$?
case $code in
  0) echo "changes=false" ;;
  2) echo "changes=true" ;;
  *)
    echo "changes=unknown"
    echo "kafka-backup plan exited with $code: conflicts or an error (plan.md and the log above say which)" >&2
    exit 1
    ;;
esac
